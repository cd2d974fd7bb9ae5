"""A synthetic NB201-format table with known structure, shared by the search tests.

The table (`nas.evaluators.synthetic`) scores every one of the 15625 cells as a sum
of per-edge op scores plus pairwise interactions; the reward column adds noise.
Written once per test process into a temporary directory and cached.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

from nas.evaluators import synthetic
from nas.evaluators.tabular import Table, TabularEvaluator

REWARD = synthetic.REWARD_COLUMN
REPORT = synthetic.REPORT_COLUMN


@functools.lru_cache(maxsize=None)
def table_path(seed: int = 0) -> str:
  directory = tempfile.mkdtemp(prefix="nb201-synthetic-")
  atexit.register(shutil.rmtree, directory, ignore_errors=True)
  path = os.path.join(directory, f"table_{seed}.csv")
  synthetic.write_table(path, seed=seed)
  return path


@functools.lru_cache(maxsize=None)
def table(seed: int = 0) -> Table:
  return Table(table_path(seed))


def evaluator(seed: int = 0, **kwargs) -> TabularEvaluator:
  return TabularEvaluator(table(seed), REWARD, REPORT, **kwargs)


def regret(report_value: float, seed: int = 0) -> float:
  """How far a pick's report metric is below the table's best."""
  return table(seed).best(REPORT) - report_value
