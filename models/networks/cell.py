"""One cell of a NASNet-style network, compiled from a `models.genotypes.genotype.Cell`.

Inputs are node 0 = h[i-2] (`s0`) and node 1 = h[i-1] (`s1`). `s1` goes through a
1x1 ReLU-conv-BN to the cell's `filters`; `s0` is adjusted to the same shape: a
FactorizedReduce when it has twice the spatial size, else a 1x1 ReLU-conv-BN. The
first stem cell of NASNet/PNASNet has no h[i-2]: node 0 is then the raw cell input
(ops on it map its channels to `filters`). In a reduction cell, ops reading a cell
input have stride 2; ops reading a block have stride 1.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models.genotypes import genotype as gt
from models import ops


def drop_path(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
  """Zeroes whole samples with probability `rate` and rescales the rest."""
  keep = 1.0 - rate
  mask = jax.random.bernoulli(key, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
  return jnp.where(mask, x / keep, jnp.zeros_like(x))


def is_literal_zero(rate) -> bool:
  """True for a Python 0; a traced rate (scheduled drop path) is applied even when 0."""
  return isinstance(rate, (int, float)) and rate == 0


class Block(nnx.Module):
  """The ops of one block's edges, and for `concat` blocks the 1x1 conv back to `filters`."""

  def __init__(self, block: gt.Block, node_channels: list[int], filters: int, reduction: bool,
               num_inputs: int, style: ops.OpStyle, rngs: nnx.Rngs):
    self.inputs = tuple(e.input for e in block.edges)
    self.combine = block.combine
    self.ops = nnx.List([
        ops.make_op(e.op, filters, 2 if reduction and e.input < num_inputs else 1, style, rngs,
                    in_channels=node_channels[e.input])
        for e in block.edges])
    self.combine_conv = (
        ops.ConvBN(filters * len(block.edges), filters, style=style, rngs=rngs)
        if block.combine == "concat" else None)

  def __call__(self, states: list[jax.Array], *, train: bool, drop_rate: float,
               key: jax.Array | None) -> jax.Array:
    outs = []
    for j, (i, op) in enumerate(zip(self.inputs, self.ops)):
      y = op(states[i], train=train)
      if train and not is_literal_zero(drop_rate) and key is not None and not ops.is_identity(op):
        y = drop_path(y, drop_rate, jax.random.fold_in(key, j))
      outs.append(y)
    if self.combine_conv is not None:
      return self.combine_conv(jnp.concatenate(outs, axis=-1), train=train)
    return sum(outs[1:], outs[0])


class Cell(nnx.Module):
  """A compiled cell: `cell(s0, s1, train=...)` -> concat of the output nodes."""

  def __init__(self, cell: gt.Cell, *, c_prev_prev: int | None, c_prev: int, filters: int,
               reduction: bool, reduce_prev: bool, style: ops.OpStyle, rngs: nnx.Rngs):
    if cell.num_inputs != 2:
      raise gt.GenotypeError(f"num_inputs: a NASNet-style cell takes 2 inputs, got "
                             f"{cell.num_inputs}")
    self.reduction = reduction
    if c_prev_prev is None:
      self.preprocess0 = None
    elif reduce_prev:
      self.preprocess0 = ops.FactorizedReduce(c_prev_prev, filters, style=style, rngs=rngs)
    else:
      self.preprocess0 = ops.ConvBN(c_prev_prev, filters, style=style, rngs=rngs)
    self.preprocess1 = ops.ConvBN(c_prev, filters, style=style, rngs=rngs)
    node_channels = [c_prev if c_prev_prev is None else filters, filters]
    blocks = []
    for block in cell.blocks:
      blocks.append(Block(block, node_channels, filters, reduction, cell.num_inputs, style, rngs))
      node_channels.append(filters)
    self.blocks = nnx.List(blocks)
    self.concat = cell.output_nodes()
    if reduction and any(n < cell.num_inputs for n in self.concat):
      raise gt.GenotypeError(f"concat: a reduction cell cannot output an input node "
                             f"(nodes {list(self.concat)}); its inputs keep the full size")
    self.out_channels = sum(node_channels[n] for n in self.concat)

  def __call__(self, s0: jax.Array | None, s1: jax.Array, *, train: bool,
               drop_rate: float = 0.0, key: jax.Array | None = None) -> jax.Array:
    s0 = s1 if self.preprocess0 is None else self.preprocess0(s0, train=train)
    states = [s0, self.preprocess1(s1, train=train)]
    for k, block in enumerate(self.blocks):
      block_key = None if key is None else jax.random.fold_in(key, k)
      states.append(block(states, train=train, drop_rate=drop_rate, key=block_key))
    return jnp.concatenate([states[n] for n in self.concat], axis=-1)
