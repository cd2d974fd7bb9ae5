"""The evaluator interface: a genotype in, a dict of metrics (with the reward) out."""
from __future__ import annotations

import abc

from models.genotype import Genotype

REWARD = "reward"


class Evaluator(abc.ABC):
  """Scores one trial. A NaN reward or an exception marks the trial failed (the
  search goes on); a `models.errors.UserError` stops the search, as it means the
  set-up itself is wrong."""

  @abc.abstractmethod
  def evaluate(self, genotype: Genotype, trial_id: int) -> dict[str, float]:
    """Metrics of `genotype`, including `REWARD` (higher is better)."""
