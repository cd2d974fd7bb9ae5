"""A synthetic table in NB201 format, with known structure, for offline work.

Every one of the 15625 cells gets a true score: a per-edge op score plus pairwise
interactions between the ops of every two edges (so the landscape is neither
additive nor flat). The reward column adds cell-specific noise (a short-training
proxy), the report column less of it (a long training). The numbers mean nothing
about real networks: real NB201 accuracies need the real table.
"""
from __future__ import annotations

import csv
import os
import tempfile

import numpy as np

from models.genotypes import notation
from nas.spaces.nb201 import NB201Space

REWARD_COLUMN = "valid_acc_12"
REPORT_COLUMN = "test_acc_200"


def true_scores(seed: int = 0, interaction: float = 0.5) -> np.ndarray:
  """The noise-free score of every cell, in `NB201Space().enumerate()` order."""
  rng = np.random.default_rng(seed)
  space = NB201Space()
  num_edges, num_ops = len(space.decisions()), len(space.rules.ops)
  edge_op = rng.normal(size=(num_edges, num_ops))
  pair = rng.normal(size=(num_edges, num_edges, num_ops, num_ops)) * interaction
  choices = np.array(np.meshgrid(*[np.arange(num_ops)] * num_edges, indexing="ij"))
  choices = choices.reshape(num_edges, -1)      # column k = the k-th cell's ops
  score = sum(edge_op[e, choices[e]] for e in range(num_edges))
  for a in range(num_edges):
    for b in range(a + 1, num_edges):
      score = score + pair[a, b, choices[a], choices[b]]
  return score


def write_table(path: str, seed: int = 0, reward_noise: float = 1.0,
                report_noise: float = 0.2) -> None:
  """Writes the table (atomically; identical bytes for the same arguments)."""
  score = true_scores(seed)
  accuracy = 70.0 + 20.0 * (score - score.mean()) / (score.max() - score.mean())
  rng = np.random.default_rng(seed + 1)
  reward = accuracy + rng.normal(size=score.shape) * reward_noise
  report = accuracy + 2.0 + rng.normal(size=score.shape) * report_noise
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".table-", suffix=".tmp")
  with os.fdopen(fd, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["arch", REWARD_COLUMN, REPORT_COLUMN, "true_score"])
    for k, g in enumerate(NB201Space().enumerate()):
      writer.writerow([notation.to_nb201(g), f"{reward[k]:.4f}", f"{report[k]:.4f}",
                       f"{score[k]:.6f}"])
  os.replace(tmp, path)
