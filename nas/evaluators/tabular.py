"""Tabular-benchmark evaluation: look the cell up in a CSV instead of training it.

The table has a column `arch` (an NB201 string) and numeric metric columns; the
reward column (e.g. 12-epoch validation accuracy) is what the search sees, the
report column (e.g. 200-epoch test accuracy) is what a final pick is judged by.
Rows are keyed by the cell's NB201 encoding, so any spelling of a cell finds its row.
"""
from __future__ import annotations

import csv
import math
import time

from models.genotypes import genotype as gt
from models.genotypes import notation
from models.errors import UserError
from nas.evaluators.base import Evaluation, Evaluator
from nas.spaces.nb201 import NB201Space

ARCH = "arch"


class Table:
  """A parsed benchmark table: metrics per cell, and each column's best value."""

  def __init__(self, path: str, required: tuple[str, ...] = ()):
    self.path = path
    try:
      f = open(path, newline="")
    except OSError as e:
      raise UserError(f"benchmark.table: cannot read {path} ({e.strerror})") from None
    with f:
      reader = csv.reader(f)
      header = next(reader, None)
      if not header:
        raise UserError(f"{path}: empty table (expected a header with column {ARCH!r})")
      header = [h.strip() for h in header]
      for col in (ARCH,) + tuple(c for c in required if c):
        if col not in header:
          raise UserError(f"{path}: missing column {col!r} (columns: {', '.join(header)})")
      arch_at = header.index(ARCH)
      self.columns = tuple(h for h in header if h != ARCH)
      self.space = NB201Space()
      self.rows: dict[tuple[int, ...], dict[str, float]] = {}
      for line, values in enumerate(reader, start=2):
        if not values:
          continue
        if len(values) != len(header):
          raise UserError(f"{path}: row {line}: {len(values)} values, the header has "
                          f"{len(header)}")
        try:
          g = notation.from_nb201(values[arch_at])
        except gt.GenotypeError as e:
          raise UserError(f"{path}: row {line}, column {ARCH!r}: {e}") from None
        metrics = {}
        for col, value in zip(header, values):
          if col == ARCH:
            continue
          try:
            metrics[col] = float(value)
          except ValueError:
            raise UserError(f"{path}: row {line}, column {col!r}: non-numeric value "
                            f"{value!r}") from None
        key = tuple(self.space.encode(g))
        if key in self.rows:
          raise UserError(f"{path}: row {line}, column {ARCH!r}: cell listed twice")
        self.rows[key] = metrics
    if not self.rows:
      raise UserError(f"{path}: the table has no rows")

  def best(self, column: str) -> float:
    """The column's largest finite value (the oracle for regret)."""
    return max(m[column] for m in self.rows.values() if math.isfinite(m[column]))

  def lookup(self, genotype: gt.Genotype) -> dict[str, float]:
    try:
      key = tuple(self.space.encode(genotype))
    except gt.GenotypeError:
      key = None
    if key not in self.rows:
      raise UserError(f"{self.path}: no row for cell {notation.to_nb201(genotype)}")
    return self.rows[key]


class TabularEvaluator(Evaluator):
  """Answers from a `Table`. `delay_s` makes each evaluation take that long (to test
  crash recovery); `log_path` gets one line per evaluation (`trial_id arch`)."""

  def __init__(self, table: Table, reward: str, report: str | None = None,
               delay_s: float = 0.0, log_path: str | None = None):
    for key, col in (("benchmark.reward", reward), ("benchmark.report", report)):
      if col and col not in table.columns:
        raise UserError(f"{key}: no column {col!r} in {table.path} "
                        f"(columns: {', '.join(table.columns)})")
    self.table = table
    self.reward = reward
    self.report_metric = report or reward
    self.delay_s = delay_s
    self.log_path = log_path

  def evaluate(self, genotype: gt.Genotype, trial_id: int) -> Evaluation:
    metrics = dict(self.table.lookup(genotype))
    if self.delay_s:
      time.sleep(self.delay_s)
    if self.log_path:
      with open(self.log_path, "a") as f:
        f.write(f"{trial_id} {notation.to_nb201(genotype)}\n")
    return Evaluation(metrics[self.reward], metrics)
