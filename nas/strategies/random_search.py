"""Random search: every proposal is a uniform sample of the space."""
from __future__ import annotations

from models.genotypes.genotype import Genotype
from nas.strategies.base import Strategy, register


@register("random")
class RandomSearch(Strategy):

  def ask(self) -> Genotype:
    return self.space.sample(self.rng)

  def tell(self, genotype: Genotype, reward: float | None) -> None:
    del genotype, reward
