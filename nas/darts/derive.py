"""The discrete cell DARTS derives from α.

Edges of a search cell are numbered node by node: node k (k = 0..steps-1) reads
every earlier node, so its edges are the next `num_inputs + k` rows of α.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from models.genotypes import genotype as gt
from models.networks.supernet import edge_count


def edges_of_node(k: int, num_inputs: int = 2) -> range:
  """The rows of α that feed node k (0-based among intermediate nodes)."""
  start = edge_count(k, num_inputs)
  return range(start, start + num_inputs + k)


def softmax(alpha) -> np.ndarray:
  a = np.asarray(alpha, np.float64)
  e = np.exp(a - a.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def derive_cell(alpha, ops: Sequence[str], steps: int, *, num_inputs: int = 2,
                edges_per_node: int | None = 2) -> gt.Cell:
  """Top `edges_per_node` incoming edges per node by strongest non-`none` weight.

  `edges_per_node=None` keeps every edge with its argmax op, `none` included
  (the NAS-Bench-201 convention: a `none` edge is part of the cell).
  """
  weights = softmax(alpha)
  if weights.shape != (edge_count(steps, num_inputs), len(ops)):
    raise ValueError(f"alpha: shape {weights.shape}, expected "
                     f"({edge_count(steps, num_inputs)}, {len(ops)})")
  usable = np.array([op != "none" for op in ops])
  blocks = []
  for k in range(steps):
    rows = weights[list(edges_of_node(k, num_inputs))]
    if edges_per_node is None:
      blocks.append([(ops[int(np.argmax(r))], i) for i, r in enumerate(rows)])
      continue
    masked = np.where(usable, rows, -np.inf)
    # Stable sort: ties go to the earlier input, so every device derives the same cell.
    inputs = sorted(np.argsort(-masked.max(axis=1), kind="stable")[:edges_per_node])
    blocks.append([(ops[int(np.argmax(masked[i]))], int(i)) for i in inputs])
  concat = None if edges_per_node is None else range(num_inputs, num_inputs + steps)
  return gt.cell(blocks, concat=concat, num_inputs=num_inputs)


def derive(alpha_normal, alpha_reduce, ops: Sequence[str], steps: int = 4,
           space: str | None = "darts") -> gt.Genotype:
  """The genotype the DARTS paper derives (normal + reduction cell, concat of all nodes)."""
  return gt.validate(gt.Genotype(
      normal=derive_cell(alpha_normal, ops, steps),
      reduce=derive_cell(alpha_reduce, ops, steps),
      space=space))


def derive_single_cell(alpha, ops: Sequence[str], steps: int = 3,
                       space: str | None = "nb201") -> gt.Genotype:
  """NAS-Bench-201: one cell, every edge kept with its argmax op."""
  return gt.validate(gt.Genotype(
      normal=derive_cell(alpha, ops, steps, num_inputs=1, edges_per_node=None), space=space))
