"""Regularized (aging) evolution, Real et al. (2019), Algorithm 1.

The first `population_size` proposals are random. After that each proposal is a
mutation of the best of `sample_size` members drawn (without replacement) from the
population; every result joins the population and the oldest member leaves once it
holds more than `population_size`. Proposals asked in a batch before their tells
all see the population as it was (what parallel workers see). Failed trials do not
join the population.
"""
from __future__ import annotations

import collections
from typing import Any

from models.errors import UserError
from models.genotypes.genotype import Genotype
from nas.strategies.base import Strategy, register


@register("rea")
class RegularizedEvolution(Strategy):

  def __init__(self, space, seed: int, population_size: int = 20, sample_size: int = 5):
    super().__init__(space, seed)
    if not 1 <= sample_size <= population_size:
      raise UserError(f"strategy.rea: need 1 <= sample_size ({sample_size}) <= population_size "
                       f"({population_size})")
    self.population_size = population_size
    self.sample_size = sample_size
    self.population: collections.deque[tuple[list[int], float]] = collections.deque()
    self.num_asked = 0

  def ask(self) -> Genotype:
    self.num_asked += 1
    if self.num_asked <= self.population_size or not self.population:
      return self.space.sample(self.rng)
    size = min(self.sample_size, len(self.population))
    picks = self.rng.choice(len(self.population), size=size, replace=False)
    parent = max((self.population[int(i)] for i in picks), key=lambda member: member[1])
    return self.space.mutate(self.space.decode(parent[0]), self.rng)

  def tell(self, genotype: Genotype, reward: float | None) -> None:
    if reward is None:
      return
    self.population.append((self.space.encode(genotype), float(reward)))
    while len(self.population) > self.population_size:
      self.population.popleft()

  def state_dict(self) -> dict[str, Any]:
    return {**super().state_dict(), "num_asked": self.num_asked,
            "population": [[list(c), r] for c, r in self.population]}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    super().load_state_dict(state)
    self.num_asked = int(state["num_asked"])
    self.population = collections.deque((list(c), float(r)) for c, r in state["population"])
