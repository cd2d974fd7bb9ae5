"""The NAS-Bench-201 macro skeleton around one searched cell.

stem (3x3 conv + BN) -> 3 stages of `cells_per_stage` cells at C, 2C, 4C, with a
ResNet basic block of stride 2 between stages -> BN-ReLU -> global pool -> linear.
In the cell, node j is the sum over i < j of op_{i->j}(node i) and the last node is
the output. Layer for layer as in NAS-Bench-201's reference network, so parameter
counts agree (1,531,546 for the all-nor_conv_3x3 cell at C=16, 10 classes).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models import ops
from models.genotypes.genotype import Cell, Genotype, GenotypeError


def check_nb201_cell(g: Genotype) -> Cell:
  """The cell of `g` if this skeleton can build it, else a GenotypeError."""
  if g.reduce is not None:
    raise GenotypeError("reduce: the NB201 skeleton takes a single cell (no reduction cell)")
  c = g.normal
  if c.num_inputs != 1:
    raise GenotypeError(f"normal.num_inputs: the NB201 skeleton needs a one-input cell, got "
                        f"{c.num_inputs}")
  for k, b in enumerate(c.blocks):
    if b.combine != "add":
      raise GenotypeError(f"normal.blocks[{k}].combine: the NB201 skeleton sums node inputs, "
                          f"got {b.combine!r}")
  if c.output_nodes() != (c.num_nodes - 1,):
    raise GenotypeError(f"normal.concat: the NB201 skeleton outputs the last node only, got "
                        f"{list(c.output_nodes())}")
  return c


class NB201Cell(nnx.Module):
  """A one-input cell at a fixed width and stride 1."""

  def __init__(self, cell: Cell, channels: int, *, style: ops.OpStyle, rngs: nnx.Rngs):
    self.cell = cell
    self.edge_ops = nnx.List([ops.make_op(e.op, channels, 1, style, rngs)
                              for b in cell.blocks for e in b.edges])

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    nodes = [x]
    edge_ops = iter(self.edge_ops)
    for b in self.cell.blocks:
      nodes.append(sum(next(edge_ops)(nodes[e.input], train=train) for e in b.edges))
    return nodes[-1]


class ResidualReduction(nnx.Module):
  """ResNet basic block, stride 2: two ReLU-conv-BN plus a 2x2 avg-pool + 1x1 conv shortcut."""

  def __init__(self, in_channels: int, out_channels: int, *, style: ops.OpStyle,
               rngs: nnx.Rngs):
    self.conv_a = ops.ConvBN(in_channels, out_channels, 3, 2, style=style, rngs=rngs)
    self.conv_b = ops.ConvBN(out_channels, out_channels, 3, 1, style=style, rngs=rngs)
    self.shortcut = ops.Conv(in_channels, out_channels, 1, style=style, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    residual = self.shortcut(nnx.avg_pool(x, (2, 2), strides=(2, 2)))
    return residual + self.conv_b(self.conv_a(x, train=train), train=train)


class NB201Network(nnx.Module):
  """NAS-Bench-201's CIFAR network for one genotype of the nb201 space."""

  def __init__(self, genotype: Genotype, num_classes: int, *, channels: int = 16,
               cells_per_stage: int = 5, rngs: nnx.Rngs, style: ops.OpStyle | None = None):
    cell = check_nb201_cell(genotype)
    style = ops.DARTS_STYLE if style is None else style  # PyTorch padding and BN, as NB201
    self.genotype = genotype
    self.stem_conv = ops.Conv(3, channels, 3, style=style, rngs=rngs)
    self.stem_bn = ops.BatchNorm(channels, style=style, rngs=rngs)
    layers = []
    width = channels
    for stage in range(3):
      if stage:
        layers.append(ResidualReduction(width, 2 * width, style=style, rngs=rngs))
        width *= 2
      layers.extend(NB201Cell(cell, width, style=style, rngs=rngs)
                    for _ in range(cells_per_stage))
    self.layers = nnx.List(layers)
    self.head_bn = ops.BatchNorm(width, style=style, rngs=rngs)
    self.classifier = nnx.Linear(width, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None,
               drop_path_rate: float = 0.0, return_aux: bool = False):
    """Logits, or `(logits, None)` with `return_aux` (this skeleton has no auxiliary head).

    `key` and `drop_path_rate` exist for interface parity with the NASNet-style
    networks; NAS-Bench-201 trains without drop path, so they are not used.
    """
    del key, drop_path_rate
    h = self.stem_bn(self.stem_conv(x), train=train)
    for layer in self.layers:
      h = layer(h, train=train)
    h = jax.nn.relu(self.head_bn(h, train=train))
    logits = self.classifier(jnp.mean(h, axis=(1, 2)).astype(jnp.float32))
    return (logits, None) if return_aux else logits

