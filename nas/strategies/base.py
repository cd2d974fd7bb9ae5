"""The strategy interface: ask for genotypes, tell rewards, save and restore state.

A strategy never evaluates anything; the search loop asks it for proposals (several
before any result comes back, for parallel workers), evaluates them and tells it the
rewards. `state_dict` holds everything needed to continue identically after a
restart: nested dicts/lists of JSON scalars and numpy arrays (msgpack-serializable,
never pickled), including the random generator state.
"""
from __future__ import annotations

import abc
from typing import Any

import numpy as np

from models.genotype import Genotype
from nas.spaces.base import SearchSpace


class Strategy(abc.ABC):
  name: str = ""

  def __init__(self, space: SearchSpace, seed: int):
    self.space = space
    self.rng = np.random.default_rng(seed)

  @abc.abstractmethod
  def ask(self) -> Genotype:
    """One proposal. Called repeatedly for a batch before the matching tells."""

  @abc.abstractmethod
  def tell(self, genotype: Genotype, reward: float | None) -> None:
    """The result of a proposal; `None` means the trial failed (NaN, crash)."""

  def state_dict(self) -> dict[str, Any]:
    return {"rng": self.rng.bit_generator.state}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.rng.bit_generator.state = state["rng"]
