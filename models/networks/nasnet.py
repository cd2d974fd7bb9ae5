"""NASNet-style networks: a stem, three stacks of normal cells split by two reduction cells.

Filters follow the papers' N@F naming: stack k's cells have F * 2**k filters, so a cell
concatenating 6 nodes ends with 6 * 4F = 24F "penultimate filters" (NASNet-A 4@1056 has
F = 44). The stems:
- `cifar`: 3x3 conv + BN; both cell inputs of the first cell are its output (DARTS, TF-slim).
- `nasnet_imagenet`: 3x3 stride-2 valid conv + BN, then two reduction cells with F/4 and F/2
  filters (NASNet-A, PNASNet-5).
- `darts_imagenet`: three stride-2 3x3 convs (DARTS's stem0/stem1).
The auxiliary head sits after the second reduction cell, as in DARTS; its parameters live
under `aux_head` so counters can leave them out. With `scan_cells`, each run of identical
normal cells is one `models.networks.cell_stack.CellRun` (stacked weights, applied with a scan);
`models.networks.cell_stack.copy_weights` converts weights between the two layouts.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.genotypes import genotype as gt
from models import ops
from models.networks.cell import Cell
from models.networks.cell_stack import CellRun, identical_runs, next_inputs

STEMS = ("cifar", "nasnet_imagenet", "darts_imagenet")


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
  num_classes: int = 10
  filters: int = 36                              # F: filters of the first stack's cells
  normal_cells: tuple[int, int, int] = (6, 6, 6)  # normal cells per stack
  stem: str = "cifar"
  stem_filters: int | None = None                # default: 3F (cifar), F (darts_imagenet)
  image_size: int = 32                           # only sizes the auxiliary head's last conv
  # NASNet-A Large (Keras/TF-slim skip_reduction): the cell after a reduction cell reads,
  # as h[i-2], the h[i-2] the reduction cell read, not the reduction cell's input.
  skip_reduction_input: bool = False
  aux_head: bool = False
  final_relu: bool = False                       # ReLU before global pooling (NASNet, PNASNet)
  dropout: float = 0.0                           # before the classifier
  drop_path_cell_scaling: bool = False           # TF-slim: cell i drops with rate * (i+1)/cells
  style: ops.OpStyle = ops.DARTS_STYLE
  # Runs of identical normal cells become one `CellRun` so XLA traces each run's cell once.
  # Changes the parameter tree (checkpoints, weight import expect the default layout).
  scan_cells: bool = False

  def __post_init__(self):
    if self.stem not in STEMS:
      raise ValueError(f"NetworkConfig.stem: unknown {self.stem!r} (known: {', '.join(STEMS)})")
    if len(self.normal_cells) != 3:
      raise ValueError(f"NetworkConfig.normal_cells: need 3 stacks, got {self.normal_cells}")


def darts_normal_cells(layers: int) -> tuple[int, int, int]:
  """Normal cells per stack for DARTS's `layers` (reduction cells at layers//3, 2*layers//3)."""
  r1, r2 = layers // 3, 2 * layers // 3
  return (r1, r2 - r1 - 1, layers - r2 - 1)


class AuxiliaryHead(nnx.Module):
  """ReLU, 5x5 avg pool, 1x1 conv 128 + BN + ReLU, conv over the rest 768 + BN + ReLU, dense."""

  def __init__(self, channels: int, spatial: int, pool_stride: int, num_classes: int,
               style: ops.OpStyle, rngs: nnx.Rngs):
    self.pool_size = min(5, spatial)
    self.pool_stride = pool_stride
    pooled = (spatial - self.pool_size) // pool_stride + 1
    self.conv_1 = ops.ConvBN(channels, 128, style=style, rngs=rngs)
    self.conv_2 = ops.ConvBN(128, 768, pooled, style=style, rngs=rngs, padding="valid")
    self.classifier = nnx.Linear(768, num_classes, dtype=style.dtype, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    k, s = self.pool_size, self.pool_stride
    x = jax.lax.reduce_window(jax.nn.relu(x), np.array(0, x.dtype), jax.lax.add,
                              (1, k, k, 1), (1, s, s, 1), "VALID") / (k * k)
    x = jax.nn.relu(self.conv_2(self.conv_1(x, train=train), train=train))
    return self.classifier(jnp.mean(x, axis=(1, 2)))


class Stem(nnx.Module):
  """The conv part of the stem; returns (s0, s1) for the first cell."""

  def __init__(self, kind: str, filters: int, style: ops.OpStyle, rngs: nnx.Rngs):
    self.kind = kind
    if kind == "darts_imagenet":
      self.conv_1 = ops.ConvBN(3, filters // 2, 3, 2, style=style, rngs=rngs, relu=False)
      self.conv_2 = ops.ConvBN(filters // 2, filters, 3, 2, style=style, rngs=rngs)
      self.conv_3 = ops.ConvBN(filters, filters, 3, 2, style=style, rngs=rngs)
    else:
      stride, padding = (2, "valid") if kind == "nasnet_imagenet" else (1, "auto")
      self.conv_1 = ops.ConvBN(3, filters, 3, stride, style=style, rngs=rngs, relu=False,
                               padding=padding)

  def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array | None, jax.Array]:
    x = self.conv_1(x, train=train)
    if self.kind == "darts_imagenet":
      s0 = self.conv_2(x, train=train)
      return s0, self.conv_3(s0, train=train)
    if self.kind == "nasnet_imagenet":
      return None, x
    return x, x


class Network(nnx.Module):
  """`model(x, *, train, key, drop_path_rate, return_aux)` on NHWC float32 images.

  `key` drives drop path and the classifier dropout; both act only when `train` and a
  key is given. `return_aux=True` returns `(logits, aux_logits or None)`. `cell_type`
  builds each cell from `models.networks.cell.Cell`'s arguments (`models.networks.anycell` passes its own).
  """

  def __init__(self, genotype: gt.Genotype, config: NetworkConfig, *, rngs: nnx.Rngs,
               cell_type: Callable[..., nnx.Module] = Cell):
    if genotype.reduce is None:
      raise gt.GenotypeError("reduce: a NASNet-style network needs a reduction cell")
    self.config = config
    rngs = ops.KeyStream(rngs.params())
    style, F = config.style, config.filters
    stem_filters = config.stem_filters or (3 * F if config.stem == "cifar" else F)
    self.stem = Stem(config.stem, stem_filters, style, rngs)
    size = stem_output_size(config.stem, config.image_size)

    # (reduction?, filters) for every cell, stem cells first.
    plan = []
    if config.stem == "nasnet_imagenet":
      plan += [(True, F // 4), (True, F // 2)]
    for k, n in enumerate(config.normal_cells):
      if k > 0:
        plan.append((True, F * 2 ** k))
      plan += [(False, F * 2 ** k)] * n
    self.num_stem_cells = 2 if config.stem == "nasnet_imagenet" else 0
    aux_index = [i for i, (red, _) in enumerate(plan) if red][self.num_stem_cells + 1]

    # Channels and spatial sizes of (s0, s1), tracked as the cells are built.
    c0 = None if config.stem == "nasnet_imagenet" else stem_filters
    c1 = stem_filters
    reduce_prev = config.stem == "darts_imagenet"
    cells, keep_s0, signatures = [], [], []
    aux = None
    for i, (reduction, filters) in enumerate(plan):
      cell = cell_type(genotype.reduce if reduction else genotype.normal, c_prev_prev=c0,
                       c_prev=c1, filters=filters, reduction=reduction, reduce_prev=reduce_prev,
                       style=style, rngs=rngs)
      cells.append(cell)
      # Normal cells built with equal arguments and wired alike are one program (scan_cells).
      signature = None if reduction else (c0, c1, filters, reduce_prev)
      size = -(-size // 2) if reduction else size
      in_network_reduction = reduction and i >= self.num_stem_cells
      if config.skip_reduction_input and in_network_reduction:
        # h[i-2] of the next cell stays what this cell read as h[i-2], one size up.
        c1, reduce_prev = cell.out_channels, True
        keep_s0.append(True)
      else:
        c0, c1, reduce_prev = c1, cell.out_channels, reduction
        keep_s0.append(False)
      signatures.append(None if signature is None else (*signature, keep_s0[-1]))
      if i == aux_index and config.aux_head:
        aux = AuxiliaryHead(c1, size, 3 if config.stem == "cifar" else 2, config.num_classes,
                            style, rngs)
    self.keep_s0 = tuple(keep_s0)
    # (first cell, cells) of every entry of `self.cells`: a Cell, or a CellRun when scanned.
    self.cell_spans = (identical_runs(signatures) if config.scan_cells
                       else tuple((i, 1) for i in range(len(cells))))
    self.cells = nnx.List([
        cells[i] if n == 1 else CellRun(cells[i:i + n], keep_s0[i]) for i, n in self.cell_spans])
    self.aux_index = aux_index
    self.aux_head = aux
    self.classifier = nnx.Linear(c1, config.num_classes, dtype=style.dtype, rngs=rngs)
    self.num_features = c1

  def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None,
               drop_path_rate: float = 0.0, return_aux: bool = False):
    cfg = self.config
    if cfg.style.dtype is not None:
      x = x.astype(cfg.style.dtype)
    s0, s1 = self.stem(x, train=train)
    aux_logits = None
    num_cells = len(self.keep_s0)
    for entry, (start, n) in zip(self.cells, self.cell_spans):
      rates = [drop_path_rate * (i + 1) / num_cells if cfg.drop_path_cell_scaling
               else drop_path_rate for i in range(start, start + n)]
      keys = None if key is None else [jax.random.fold_in(key, i) for i in range(start, start + n)]
      if isinstance(entry, CellRun):
        s0, s1 = entry(s0, s1, train=train, rates=rates, keys=keys)
      else:
        out = entry(s0, s1, train=train, drop_rate=rates[0], key=None if keys is None else keys[0])
        s0, s1 = next_inputs(s0, s1, out, self.keep_s0[start])
      if start + n - 1 == self.aux_index and self.aux_head is not None and return_aux:
        aux_logits = self.aux_head(s1, train=train)
    if cfg.final_relu:
      s1 = jax.nn.relu(s1)
    features = jnp.mean(s1, axis=(1, 2))
    if train and cfg.dropout > 0.0 and key is not None:
      keep = 1.0 - cfg.dropout
      mask = jax.random.bernoulli(jax.random.fold_in(key, num_cells), keep, features.shape)
      features = jnp.where(mask, features / keep, 0.0)
    logits = self.classifier(features).astype(jnp.float32)
    if return_aux:
      return logits, None if aux_logits is None else aux_logits.astype(jnp.float32)
    return logits


def stem_output_size(stem: str, image_size: int) -> int:
  if stem == "nasnet_imagenet":
    return (image_size - 3) // 2 + 1
  if stem == "darts_imagenet":
    return -(-image_size // 8)
  return image_size


def scheduled_drop_path_rate(rate: float, step: int, total_steps: int) -> float:
  """Drop-path rate ramped linearly over training (DARTS's epoch-wise schedule, per step)."""
  return rate * min(step, total_steps) / max(total_steps, 1)
