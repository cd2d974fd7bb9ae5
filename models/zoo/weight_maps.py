"""Where each tensor of a published NASNet/PNASNet lives in the reference implementations.

A map walks our network and pairs every parameter and BatchNorm statistic with the
name of the reference tensor holding it: Keras `keras.applications.NASNetMobile/Large`
(`layer/variable`, e.g. `separable_conv_1_normal_left1_0/depthwise_kernel`) or a timm
`state_dict` key (`cell_0.comb_iter_0_left.separable_1.depthwise_conv2d.weight`).
`layout` tells the reader how to turn the reference's array into ours.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

from flax import nnx

from models import ops
from models.networks.cell import Cell
from models.errors import UserError
from models.networks.nasnet import Network


@dataclasses.dataclass(frozen=True)
class Target:
  """`variable` is set from the reference tensor `key`, stored in `layout`: "conv" (a
  conv kernel; ours HWIO), "depthwise" (ours kh, kw, 1, C), "dense" (ours in, out) or
  "vector"."""
  variable: nnx.Variable
  key: str
  layout: str


def _bn_vars(bn: ops.BatchNorm) -> nnx.Module:
  """The module holding scale, bias, mean and var (ours, or a wrapped `nnx.BatchNorm`)."""
  return getattr(bn, "norm", bn)


# ----------------------------------------------------------------------------- Keras

_KERAS_BN = (("scale", "gamma"), ("bias", "beta"), ("mean", "moving_mean"),
             ("var", "moving_variance"))


def _keras_bn(bn: ops.BatchNorm, layer: str) -> Iterator[Target]:
  for ours, theirs in _KERAS_BN:
    yield Target(getattr(_bn_vars(bn), ours), f"{layer}/{theirs}", "vector")


def _keras_conv_bn(m: ops.ConvBN, conv: str, bn: str) -> Iterator[Target]:
  yield Target(m.conv.kernel, f"{conv}/kernel", "conv")
  yield from _keras_bn(m.bn, bn)


def _keras_sep(m: ops.SepConv, name: str) -> Iterator[Target]:
  for r, (depthwise, pointwise, bn) in enumerate(zip(m.depthwise, m.pointwise, m.bn), 1):
    yield Target(depthwise.kernel, f"separable_conv_{r}_{name}/depthwise_kernel", "depthwise")
    yield Target(pointwise.kernel, f"separable_conv_{r}_{name}/pointwise_kernel", "conv")
    yield from _keras_bn(bn, f"separable_conv_{r}_bn_{name}")


def keras_cell_ids(num_blocks: int) -> list[str]:
  """Keras `block_id`s of the cells in order (NASNet(..., num_blocks=N))."""
  n = num_blocks
  return (["stem_1", "stem_2"] + [str(i) for i in range(n)] + [f"reduce_{n}"] +
          [str(n + i + 1) for i in range(n)] + [f"reduce_{2 * n}"] +
          [str(2 * n + i + 1) for i in range(n)])


def _keras_cell(cell: Cell, cell_id: str) -> Iterator[Target]:
  kind = "reduction" if cell.reduction else "normal"
  if isinstance(cell.preprocess0, ops.FactorizedReduce):
    p = cell.preprocess0
    yield Target(p.conv_1.kernel, f"adjust_conv_1_{cell_id}/kernel", "conv")
    yield Target(p.conv_2.kernel, f"adjust_conv_2_{cell_id}/kernel", "conv")
    yield from _keras_bn(p.bn, f"adjust_bn_{cell_id}")
  elif cell.preprocess0 is not None:
    yield from _keras_conv_bn(cell.preprocess0, f"adjust_conv_projection_{cell_id}",
                              f"adjust_bn_{cell_id}")
  yield from _keras_conv_bn(cell.preprocess1, f"{kind}_conv_1_{cell_id}", f"{kind}_bn_1_{cell_id}")
  for k, block in enumerate(cell.blocks):
    for j, op in enumerate(block.ops):
      where = f"{kind} cell {cell_id}, block {k}, edge {j}"
      if isinstance(op, ops.SepConv):
        side = "left" if j == 0 else "right"
        # Keras names block 5's left branch of the reduction cell "left4".
        number = 4 if (kind, k, j) == ("reduction", 4, 0) else k + 1
        yield from _keras_sep(op, f"{kind}_{side}{number}_{cell_id}")
      elif nnx.state(op, nnx.Param):
        raise UserError(f"weights: {where}: {type(op).__name__} has no Keras NASNet-A "
                        f"counterpart")


def keras_nasnet(model: Network) -> list[Target]:
  """Keras NASNet-A (Mobile or Large) names for every variable of `model`."""
  num_blocks = model.config.normal_cells[0]
  ids = keras_cell_ids(num_blocks)
  if len(ids) != len(model.cells) or set(model.config.normal_cells) != {num_blocks}:
    raise UserError("weights: Keras NASNet-A needs equal normal-cell stacks and the ImageNet stem")
  targets = list(_keras_conv_bn(model.stem.conv_1, "stem_conv1", "stem_bn1"))
  for cell, cell_id in zip(model.cells, ids):
    targets += _keras_cell(cell, cell_id)
  targets += [Target(model.classifier.kernel, "predictions/kernel", "dense"),
              Target(model.classifier.bias, "predictions/bias", "vector")]
  return targets


# ----------------------------------------------------------------------------- timm

_TORCH_BN = (("scale", "weight"), ("bias", "bias"), ("mean", "running_mean"),
             ("var", "running_var"))


def _torch_bn(bn: ops.BatchNorm, prefix: str) -> Iterator[Target]:
  for ours, theirs in _TORCH_BN:
    yield Target(getattr(_bn_vars(bn), ours), f"{prefix}.{theirs}", "vector")


def _torch_conv_bn(m: ops.ConvBN, prefix: str) -> Iterator[Target]:
  yield Target(m.conv.kernel, f"{prefix}.conv.weight", "conv")
  yield from _torch_bn(m.bn, f"{prefix}.bn")


def _torch_factorized(m: ops.FactorizedReduce, prefix: str) -> Iterator[Target]:
  yield Target(m.conv_1.kernel, f"{prefix}path_1.conv.weight", "conv")
  yield Target(m.conv_2.kernel, f"{prefix}path_2.conv.weight", "conv")
  yield from _torch_bn(m.bn, f"{prefix}final_path_bn")


def _torch_op(op: nnx.Module, prefix: str, where: str) -> Iterator[Target]:
  if isinstance(op, ops.SepConv):
    for r, (depthwise, pointwise, bn) in enumerate(zip(op.depthwise, op.pointwise, op.bn), 1):
      yield Target(depthwise.kernel, f"{prefix}.separable_{r}.depthwise_conv2d.weight",
                   "depthwise")
      yield Target(pointwise.kernel, f"{prefix}.separable_{r}.pointwise_conv2d.weight", "conv")
      yield from _torch_bn(bn, f"{prefix}.bn_sep_{r}")
  elif isinstance(op, ops.ConvBN):
    yield from _torch_conv_bn(op, prefix)
  elif isinstance(op, ops.Pool) and op.project is not None:
    yield from _torch_conv_bn(op.project, prefix)
  elif nnx.state(op, nnx.Param):
    raise UserError(f"weights: {where}: {type(op).__name__} has no timm counterpart")


def _timm_cell(cell: Cell, name: str, factorized_prefix: str) -> Iterator[Target]:
  if isinstance(cell.preprocess0, ops.FactorizedReduce):
    yield from _torch_factorized(cell.preprocess0, f"{name}.{factorized_prefix}")
  elif cell.preprocess0 is not None:
    yield from _torch_conv_bn(cell.preprocess0, f"{name}.conv_prev_1x1")
  yield from _torch_conv_bn(cell.preprocess1, f"{name}.conv_1x1")
  for k, block in enumerate(cell.blocks):
    for j, op in enumerate(block.ops):
      side = "left" if j == 0 else "right"
      yield from _torch_op(op, f"{name}.comb_iter_{k}_{side}", f"{name}, block {k}, edge {j}")


@dataclasses.dataclass(frozen=True)
class TimmLayout:
  stem: str                    # the stem ConvNormAct
  factorized_prefix: str       # where a cell's FactorizedReduce lives, after "cell_i."
  cell_names: tuple[str, ...]


def _timm_cells(normal: tuple[int, ...], reductions: tuple[str, ...] | None) -> tuple[str, ...]:
  """Cell names in order: stem cells, then `cell_i` numbered over the normal cells
  (NASNet: reductions named `reduction_cell_k`) or over all cells (PNASNet)."""
  names, i = ["cell_stem_0", "cell_stem_1"], 0
  for k, n in enumerate(normal):
    if k > 0:
      if reductions is None:
        names.append(f"cell_{i}")
        i += 1
      else:
        names.append(reductions[k - 1])
    for _ in range(n):
      names.append(f"cell_{i}")
      i += 1
  return tuple(names)


def timm_layout(name: str, model: Network) -> TimmLayout:
  normal = model.config.normal_cells
  if name == "nasnet_a_large":
    return TimmLayout("conv0", "", _timm_cells(normal, ("reduction_cell_0", "reduction_cell_1")))
  if name == "pnasnet_5_large":
    return TimmLayout("conv_0", "conv_prev_1x1.", _timm_cells(normal, None))
  raise UserError(f"weights: no timm layout for model {name!r} (known: nasnet_a_large, "
                  f"pnasnet_5_large)")


def timm_map(name: str, model: Network) -> list[Target]:
  """timm `nasnetalarge` / `pnasnet5large` state_dict keys for every variable of `model`."""
  layout = timm_layout(name, model)
  if len(layout.cell_names) != len(model.cells):
    raise UserError(f"weights: {name} has {len(model.cells)} cells, timm's has "
                    f"{len(layout.cell_names)}")
  targets = list(_torch_conv_bn(model.stem.conv_1, layout.stem))
  for cell, cell_name in zip(model.cells, layout.cell_names):
    targets += _timm_cell(cell, cell_name, layout.factorized_prefix)
  targets += [Target(model.classifier.kernel, "last_linear.weight", "dense"),
              Target(model.classifier.bias, "last_linear.bias", "vector")]
  return targets
