"""The search-space interface: sample, mutate, encode as decisions, enumerate.

A space turns a `models.spaces.SpaceRules` into something a strategy can search.
The decision sequence is what an autoregressive controller emits, one choice at a
time; `encode` and `decode` are inverses on valid genotypes.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Callable, Iterator, Sequence

import numpy as np

from models.genotypes.genotype import Genotype
from models.spaces import SpaceRules

MUTABLE_KINDS = ("input", "op", "combine")
_REGISTRY: dict[str, Callable[..., "SearchSpace"]] = {}


def register(name: str):
  """Class decorator: `get_search_space(name, **kw)` builds the class."""
  def wrap(cls):
    _REGISTRY[name] = cls
    return cls
  return wrap


@dataclasses.dataclass(frozen=True)
class Decision:
  """One choice of the sequence: which cell, block and edge it belongs to, and its kind."""
  kind: str          # "input" | "op" | "combine"
  num_choices: int
  cell: str          # "normal" | "reduce"
  block: int
  edge: int | None = None   # None for a block-level choice (combine)


class SearchSpace(abc.ABC):
  rules: SpaceRules

  @property
  def name(self) -> str:
    return self.rules.name

  @abc.abstractmethod
  def decisions(self) -> list[Decision]:
    """The decision sequence spec; its length and choice counts are fixed for the space."""

  @abc.abstractmethod
  def decode(self, choices: Sequence[int]) -> Genotype:
    """Genotype from one choice per decision (validated)."""

  @abc.abstractmethod
  def encode(self, genotype: Genotype) -> list[int]:
    """Inverse of `decode`."""

  def sample(self, rng: np.random.Generator) -> Genotype:
    return self.decode([int(rng.integers(d.num_choices)) for d in self.decisions()])

  def mutate(self, genotype: Genotype, rng: np.random.Generator) -> Genotype:
    """A neighbour differing in exactly one choice (regularized evolution).

    As in Real et al. (2019): first the kind of mutation (an input, an op, or the
    combine rule where the space has one), then one decision of that kind, then a
    value different from the current one, so a mutation is never a no-op.
    """
    choices = self.encode(genotype)
    decisions = self.decisions()
    by_kind = {k: [i for i, d in enumerate(decisions) if d.kind == k and d.num_choices > 1]
               for k in MUTABLE_KINDS}
    kinds = [k for k in MUTABLE_KINDS if by_kind[k]]
    kind = kinds[int(rng.integers(len(kinds)))]
    i = by_kind[kind][int(rng.integers(len(by_kind[kind])))]
    shift = 1 + int(rng.integers(decisions[i].num_choices - 1))
    choices[i] = (choices[i] + shift) % decisions[i].num_choices
    return self.decode(choices)

  def size(self) -> int:
    return int(np.prod([d.num_choices for d in self.decisions()], dtype=object))

  def enumerate(self) -> Iterator[Genotype]:
    """Every genotype of a small space (e.g. NB201's 15625), in encoding order."""
    raise NotImplementedError(f"the {self.name} space is too large to enumerate "
                              f"({self.size()} encodings)")
