"""The DARTS supernet: mixed ops over an op set, search cells, the CIFAR search network.

Every edge of a search cell carries all ops of the op set and outputs their
softmax(α)-weighted sum. The architecture parameters `alpha_normal` and
`alpha_reduce` are `ArchParam` variables, not `nnx.Param`, so
`nnx.Optimizer(model, tx, wrt=nnx.Param)` trains the weights, `wrt=ArchParam`
trains α, and both are part of the state a checkpoint holds.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from models import ops as ops_lib
from models import spaces

# The derived genotype's space for each op set (None: ops only, no space rules apply,
# e.g. NB201 ops in the two-input DARTS cell).
GENOTYPE_SPACE = {"darts": "darts", "pnas": "pnas", "nb201": None}


class ArchParam(nnx.Variable):
  """An architecture parameter (α): trained on validation data by its own optimizer."""


def edge_count(steps: int, num_inputs: int = 2) -> int:
  return sum(num_inputs + k for k in range(steps))


class PoolBN(nnx.Module):
  """A pooling op followed by BN, as DARTS's search cell normalizes pools."""

  def __init__(self, pool: nnx.Module, channels: int, style: ops_lib.OpStyle, rngs: nnx.Rngs):
    self.pool = pool
    self.bn = ops_lib.BatchNorm(channels, style=style, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    return self.bn(self.pool(x, train=train), train=train)


class MixedOp(nnx.Module):
  """All ops of an op set on one edge; the output is their weighted sum."""

  def __init__(self, op_names: Sequence[str], channels: int, stride: int,
               style: ops_lib.OpStyle, rngs: nnx.Rngs):
    candidates = []
    for name in op_names:
      op = ops_lib.make_op(name, channels, stride, style, rngs)
      candidates.append(PoolBN(op, channels, style, rngs) if "pool" in name else op)
    self.ops = nnx.List(candidates)

  def __call__(self, x: jax.Array, weights: jax.Array, *, train: bool) -> jax.Array:
    return sum(w * op(x, train=train) for w, op in zip(weights, self.ops))


def edge_index(node: int, source: int) -> int:
  """Row of α for the edge from `source` into intermediate node `node` (0-based), in
  DARTS's order: node 0's edges from inputs 0 and 1, then node 1's from 0, 1, 2, ..."""
  return edge_count(node) + source


class SourceEdges(nnx.Module):
  """The mixed ops on every edge leaving one node, as one module with stacked parameters.

  All edges leaving a node read the same tensor with the same stride, so they are
  one vmapped computation: XLA compiles each op once per source instead of once per
  edge, which cut the compile time of the search step several-fold on CPU.
  The output has a leading axis over the edges.
  """

  def __init__(self, op_names: Sequence[str], channels: int, stride: int, num_edges: int,
               style: ops_lib.OpStyle, rngs: nnx.Rngs):
    self.num_edges = num_edges

    @nnx.split_rngs(splits=num_edges)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(rngs: nnx.Rngs) -> MixedOp:
      return MixedOp(op_names, channels, stride, style, rngs)

    self.mixed = create(rngs)

  def __call__(self, x: jax.Array, weights: jax.Array, *, train: bool) -> jax.Array:
    @nnx.vmap(in_axes=(0, None, 0), out_axes=0)
    def apply(mixed: MixedOp, x: jax.Array, w: jax.Array) -> jax.Array:
      return mixed(x, w, train=train)
    return apply(self.mixed, x, weights)


class SearchCell(nnx.Module):
  """`steps` nodes, each the sum of mixed ops on all earlier nodes; output concat of the
  last `multiplier` nodes. Reduction cells stride the edges leaving the two inputs."""

  def __init__(self, op_names: Sequence[str], *, steps: int, multiplier: int, C_prev_prev: int,
               C_prev: int, C: int, reduction: bool, reduction_prev: bool,
               style: ops_lib.OpStyle, rngs: nnx.Rngs):
    self.reduction = reduction
    self.steps, self.multiplier = steps, multiplier
    if reduction_prev:
      self.preprocess0 = ops_lib.FactorizedReduce(C_prev_prev, C, style=style, rngs=rngs)
    else:
      self.preprocess0 = ops_lib.ConvBN(C_prev_prev, C, 1, style=style, rngs=rngs)
    self.preprocess1 = ops_lib.ConvBN(C_prev, C, 1, style=style, rngs=rngs)
    # Source s (0, 1: the cell inputs; s >= 2: node s - 2) feeds the nodes in targets[s].
    self.targets = tuple(tuple(range(max(0, s - 1), steps)) for s in range(steps + 1))
    self.sources = nnx.List([
        SourceEdges(op_names, C, 2 if reduction and s < 2 else 1, len(targets), style, rngs)
        for s, targets in enumerate(self.targets)])

  def __call__(self, s0: jax.Array, s1: jax.Array, weights: jax.Array, *,
               train: bool) -> jax.Array:
    states = [self.preprocess0(s0, train=train), self.preprocess1(s1, train=train)]
    nodes: list[jax.Array | None] = [None] * self.steps
    for s, (edges, targets) in enumerate(zip(self.sources, self.targets)):
      if s >= 2:
        states.append(nodes[s - 2])  # every source before s has added its edge into it
      rows = jnp.asarray([edge_index(k, s) for k in targets])
      out = edges(states[s], weights[rows], train=train)
      for e, k in enumerate(targets):
        nodes[k] = out[e] if nodes[k] is None else nodes[k] + out[e]
    states.append(nodes[-1])
    return jnp.concatenate(states[-self.multiplier:], axis=-1)


class SearchNetwork(nnx.Module):
  """DARTS's CIFAR search model: stem, `layers` cells (reductions at 1/3 and 2/3), GAP,
  linear classifier; ops use BN without affine parameters."""

  def __init__(self, *, num_classes: int, space: str = "darts", layers: int = 8,
               channels: int = 16, steps: int = 4, multiplier: int = 4,
               stem_multiplier: int = 3, bn_axis_name: str | None = None,
               init_scale: float = 1e-3, rngs: nnx.Rngs):
    if space not in GENOTYPE_SPACE:
      raise ValueError(f"space: no supernet for {space!r} (known: {', '.join(GENOTYPE_SPACE)})")
    if not 1 <= multiplier <= steps:
      raise ValueError(f"multiplier: {multiplier} must be in 1..steps ({steps})")
    self.space = space
    self.op_names = spaces.get_space(space).ops
    self.steps = steps
    style = ops_lib.OpStyle(bn_affine=False, bn_axis_name=bn_axis_name)
    stem_style = ops_lib.OpStyle(bn_axis_name=bn_axis_name)
    C_curr = stem_multiplier * channels
    self.stem = ops_lib.ConvBN(3, C_curr, 3, style=stem_style, rngs=rngs, relu=False)
    C_prev_prev, C_prev, C_curr = C_curr, C_curr, channels
    cells, reduction_prev = [], False
    for i in range(layers):
      reduction = i in (layers // 3, 2 * layers // 3)
      if reduction:
        C_curr *= 2
      cells.append(SearchCell(self.op_names, steps=steps, multiplier=multiplier,
                              C_prev_prev=C_prev_prev, C_prev=C_prev, C=C_curr,
                              reduction=reduction, reduction_prev=reduction_prev,
                              style=style, rngs=rngs))
      reduction_prev = reduction
      C_prev_prev, C_prev = C_prev, multiplier * C_curr
    self.cells = nnx.List(cells)
    self.classifier = nnx.Linear(C_prev, num_classes, rngs=rngs)
    shape = (edge_count(steps), len(self.op_names))
    self.alpha_normal = ArchParam(init_scale * jax.random.normal(rngs.params(), shape))
    self.alpha_reduce = ArchParam(init_scale * jax.random.normal(rngs.params(), shape))

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    weights_normal = jax.nn.softmax(self.alpha_normal[...], axis=-1)
    weights_reduce = jax.nn.softmax(self.alpha_reduce[...], axis=-1)
    s0 = s1 = self.stem(x, train=train)
    for cell in self.cells:
      weights = weights_reduce if cell.reduction else weights_normal
      s0, s1 = s1, cell(s0, s1, weights, train=train)
    return self.classifier(jnp.mean(s1, axis=(1, 2)))


def split(model: SearchNetwork):
  """(graphdef, weights, α, rest): the pytrees the bilevel step works on."""
  return nnx.split(model, nnx.Param, ArchParam, ...)
