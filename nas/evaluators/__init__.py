"""Evaluators score a genotype; the search loop only knows `Evaluator`."""
from nas.evaluators.base import REWARD, Evaluation, Evaluator

__all__ = ["REWARD", "Evaluation", "Evaluator"]
