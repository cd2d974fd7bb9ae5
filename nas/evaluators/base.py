"""The evaluator interface: a genotype in, an `Evaluation` out.

This is all the search side knows of training: it never sees a trainer's config keys
or metric names, only a reward (higher is better) and metrics to store and report.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Mapping

from models.genotypes.genotype import Genotype

REWARD = "reward"


@dataclasses.dataclass(frozen=True)
class Evaluation:
  reward: float                   # what the strategy maximises; NaN fails the trial
  metrics: Mapping[str, float]    # stored with the trial; `Evaluator.report_metric` among them


class Evaluator(abc.ABC):
  """Scores one trial.

  A NaN reward or an exception marks the trial failed (the search goes on). A
  `models.errors.UserError` stops the search, as it means the set-up itself is
  wrong; `models.errors.Preempted` stops it too and leaves the trial to run again.
  """

  # The metric a final pick is judged by (e.g. a table's 200-epoch test accuracy).
  report_metric: str = REWARD

  @abc.abstractmethod
  def evaluate(self, genotype: Genotype, trial_id: int) -> Evaluation:
    """The evaluation of `genotype`."""
