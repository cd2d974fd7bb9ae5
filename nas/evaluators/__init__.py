"""Evaluators score a genotype; the search loop only knows `Evaluator`."""
from nas.evaluators.base import REWARD, Evaluator

__all__ = ["REWARD", "Evaluator"]
