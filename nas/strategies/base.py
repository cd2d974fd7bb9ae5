"""The strategy interface: ask for genotypes, tell rewards, save and restore state.

A strategy never evaluates anything; the search loop asks it for proposals (several
before any result comes back, for parallel workers), evaluates them and tells it the
rewards. `state_dict` holds everything needed to continue identically after a
restart: nested dicts/lists of JSON scalars and numpy arrays (msgpack-serializable,
never pickled), including the random generator state, whose 128-bit integers are
kept as decimal strings (msgpack and JSON stop at 64 bits).

Adding a strategy is one module in this package with a `@register("name")` class.
"""
from __future__ import annotations

import abc
from typing import Any, Callable

import numpy as np

from models.genotypes.genotype import Genotype
from nas.spaces.base import SearchSpace

_REGISTRY: dict[str, Callable[..., "Strategy"]] = {}


def register(name: str):
  """Class decorator: `make_strategy(name, space, seed, **cfg)` builds the class."""
  def wrap(cls):
    cls.name = name
    _REGISTRY[name] = cls
    return cls
  return wrap


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
  return _ints_to_str(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
  rng.bit_generator.state = _str_to_ints(state)


def _ints_to_str(x):
  if isinstance(x, dict):
    return {k: _ints_to_str(v) for k, v in x.items()}
  if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
    return str(int(x))
  return x


def _str_to_ints(x):
  if isinstance(x, dict):
    return {k: _str_to_ints(v) for k, v in x.items()}
  if isinstance(x, str) and x.lstrip("-").isdigit():
    return int(x)
  return x


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
    return {"rng": rng_state(self.rng)}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    set_rng_state(self.rng, state["rng"])
