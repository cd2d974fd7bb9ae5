"""PyTorch twins of our NASNet-style networks, for timing against the JAX models.

`build_network(genotype, config)` builds the same network as `models.networks.nasnet.Network`
(same ops, padding, preprocessing, stems, wiring, BN eps/momentum) in NCHW layout;
module and attribute names follow ours, so `load_jax_state` copies a JAX model's
weights by path and the two compute the same logits. Needs torch (optional,
`requirements-reference.txt`); nothing in the main path imports this module.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Callable, Sequence

import jax
import numpy as np
import torch
import torch.nn.functional as F
from flax import nnx
from torch import nn

from experiments.benchmarks.timing import time_steps
from models.genotypes import genotype as gt
from models import ops as jax_ops
from models.networks.nasnet import NetworkConfig, stem_output_size
from models.ops import OpStyle


def _load_triton_before_tensorflow() -> None:
  """Loading triton's native library after TensorFlow's crashes the process (segfault;
  torch 2.14.1, tensorflow 2.21), and torch loads triton lazily (from torch.optim and
  torch.profiler). Load it now if TensorFlow is not loaded yet; otherwise hide it from
  torch, which then runs without it (the CPU reference never needs it)."""
  if "triton" in sys.modules:
    return
  if "tensorflow" in sys.modules:
    sys.modules["triton"] = None   # `import triton` now raises ImportError
  else:
    import torch._dynamo  # noqa: F401  (imports triton)


_load_triton_before_tensorflow()

# Parameters our counters leave out: the auxiliary head, and α of a search network.
NOT_COUNTED = ("aux_head", "alpha_normal", "alpha_reduce")


def check_style(style: OpStyle) -> None:
  """Raises NotImplementedError naming the first OpStyle field this module cannot follow."""
  if style.bn_axis_name is not None:
    raise NotImplementedError("OpStyle.bn_axis_name: cross-replica BatchNorm is not "
                              "implemented in the PyTorch reference")
  if style.dtype is not None:
    raise NotImplementedError(f"OpStyle.dtype: only float32 (None) is implemented, got "
                              f"{style.dtype}")
  supported = {"stride2_padding": ("symmetric", "same"),
               "stride2_pool_padding": ("exclude", "zeros", "zeros_avg"),
               "reduce_identity": ("factorized", "conv_1x1")}
  for field, known in supported.items():
    if getattr(style, field) not in known:
      raise NotImplementedError(f"OpStyle.{field}: {getattr(style, field)!r} is not "
                                "implemented in the PyTorch reference")


def _pairs(pads: Sequence[tuple[int, int]]) -> tuple[int, int, int, int]:
  """Our per-dim (before, after) pads as F.pad's (left, right, top, bottom)."""
  (top, bottom), (left, right) = pads
  return (left, right, top, bottom)


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _symmetric(pads: Sequence[tuple[int, int]]) -> bool:
  return all(a == b for a, b in pads)


# ----------------------------------------------------------------------------- base layers

class Conv(nn.Module):
  """Bias-free conv, OIHW weight; padding from the input size and the style, as ours."""

  def __init__(self, in_channels: int, out_channels: int, kernel: int | Sequence[int],
               stride: int | Sequence[int] = 1, *, dilation: int = 1, padding: str = "auto",
               groups: int = 1, style: OpStyle):
    super().__init__()
    self.kernel_size = _pair(kernel)
    self.stride = _pair(stride)
    self.dilation = _pair(dilation)
    self.padding, self.groups, self.style = padding, groups, style
    self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups,
                                           *self.kernel_size))
    nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.padding == "valid":
      pads = [(0, 0), (0, 0)]
    else:
      pads = jax_ops.spatial_padding(x.shape[2:], self.kernel_size, self.stride, self.dilation,
                                     self.style.stride2_padding)
    if _symmetric(pads):
      padding = (pads[0][0], pads[1][0])
    else:
      x, padding = F.pad(x, _pairs(pads)), (0, 0)
    return F.conv2d(x, self.weight, None, self.stride, padding, self.dilation, self.groups)


def batch_norm(channels: int, style: OpStyle) -> nn.BatchNorm2d:
  # PyTorch's momentum weighs the new batch; ours (Flax/Keras) weighs the running value.
  # PyTorch keeps the unbiased batch variance in running_var, ours the biased one: training
  # outputs are identical, running statistics differ by a factor n / (n - 1).
  return nn.BatchNorm2d(channels, eps=style.bn_epsilon, momentum=1.0 - style.bn_momentum,
                        affine=style.bn_affine)


class ConvBN(nn.Module):
  def __init__(self, in_channels: int, out_channels: int, kernel: int | Sequence[int] = 1,
               stride: int | Sequence[int] = 1, *, style: OpStyle, relu: bool = True,
               padding: str = "auto"):
    super().__init__()
    self.relu = relu
    self.conv = Conv(in_channels, out_channels, kernel, stride, padding=padding, style=style)
    self.bn = batch_norm(out_channels, style)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.bn(self.conv(F.relu(x) if self.relu else x))


class FactorizedReduce(nn.Module):
  def __init__(self, in_channels: int, out_channels: int, *, style: OpStyle):
    super().__init__()
    half = out_channels // 2
    self.conv_1 = Conv(in_channels, half, 1, style=style)
    self.conv_2 = Conv(in_channels, out_channels - half, 1, style=style)
    self.bn = batch_norm(out_channels, style)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = F.relu(x)
    path_1 = x[:, :, ::2, ::2]
    path_2 = x[:, :, 1::2, 1::2]
    # Odd sizes: the offset grid is one short; ours zero-fills the far edge.
    path_2 = F.pad(path_2, (0, path_1.shape[3] - path_2.shape[3],
                            0, path_1.shape[2] - path_2.shape[2]))
    return self.bn(torch.cat([self.conv_1(path_1), self.conv_2(path_2)], dim=1))


class SepConv(nn.Module):
  """`repeats` x (ReLU, depthwise, pointwise, BN); only the first unit strides."""

  def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, *,
               style: OpStyle, repeats: int | None = None, dilation: int = 1):
    super().__init__()
    repeats = style.sep_conv_repeats if repeats is None else repeats
    self.depthwise, self.pointwise, self.bn = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
    channels = in_channels
    for r in range(repeats):
      self.depthwise.append(Conv(channels, channels, kernel, stride if r == 0 else 1,
                                 dilation=dilation, groups=channels, style=style))
      self.pointwise.append(Conv(channels, out_channels, 1, style=style))
      self.bn.append(batch_norm(out_channels, style))
      channels = out_channels

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    for depthwise, pointwise, bn in zip(self.depthwise, self.pointwise, self.bn):
      x = bn(pointwise(depthwise(F.relu(x))))
    return x


class SpatiallySeparableConv(nn.Module):
  def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, *,
               style: OpStyle):
    super().__init__()
    self.conv_1xk = Conv(in_channels, out_channels, (1, kernel), (1, stride), style=style)
    self.conv_kx1 = Conv(out_channels, out_channels, (kernel, 1), (stride, 1), style=style)
    self.bn = batch_norm(out_channels, style)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.bn(self.conv_kx1(self.conv_1xk(F.relu(x))))


def pool2d(x: torch.Tensor, kind: str, kernel: int, stride: int, style: OpStyle) -> torch.Tensor:
  """`models.ops.pool2d` in NCHW: output ceil(size / stride), padding per `style`."""
  pads = jax_ops.spatial_padding(x.shape[2:], (kernel, kernel), (stride, stride), (1, 1),
                                 style.stride2_padding)
  mode = style.stride2_pool_padding
  if stride > 1 and (mode == "zeros" or (mode == "zeros_avg" and kind == "avg")):
    x = F.pad(x, _pairs(pads))   # padding zeros that the pool sees and counts
    pads = [(0, 0), (0, 0)]
  if kind == "max":
    if not _symmetric(pads):
      x, pads = F.pad(x, _pairs(pads), value=-math.inf), [(0, 0), (0, 0)]
    return F.max_pool2d(x, kernel, stride, (pads[0][0], pads[1][0]))
  if _symmetric(pads):
    return F.avg_pool2d(x, kernel, stride, (pads[0][0], pads[1][0]), count_include_pad=False)
  # Uneven padding: average over the real pixels only (sum over window / real count).
  ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
  sums = F.avg_pool2d(F.pad(x, _pairs(pads)), kernel, stride)
  counts = F.avg_pool2d(F.pad(ones, _pairs(pads)), kernel, stride)
  return sums / counts


class Pool(nn.Module):
  def __init__(self, in_channels: int, out_channels: int, kind: str, kernel: int, stride: int,
               *, style: OpStyle):
    super().__init__()
    self.kind, self.kernel, self.stride, self.style = kind, kernel, stride, style
    self.project = (None if in_channels == out_channels else
                    ConvBN(in_channels, out_channels, style=style, relu=False))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = pool2d(x, self.kind, self.kernel, self.stride, self.style)
    return y if self.project is None else self.project(y)


class Zero(nn.Module):
  def __init__(self, out_channels: int, stride: int):
    super().__init__()
    self.out_channels, self.stride = out_channels, stride

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    n, _, h, w = x.shape
    s = self.stride
    return x.new_zeros((n, self.out_channels, -(-h // s), -(-w // s)))


# ----------------------------------------------------------------------------- registry

OpBuilder = Callable[[int, int, int, OpStyle], nn.Module]


def _identity(cin: int, cout: int, stride: int, style: OpStyle) -> nn.Module:
  if stride == 1 and cin == cout:
    return nn.Identity()
  if stride == 2 and style.reduce_identity == "factorized":
    return FactorizedReduce(cin, cout, style=style)
  return ConvBN(cin, cout, 1, stride, style=style)


def _sep(k: int) -> OpBuilder:
  return lambda cin, cout, s, style: SepConv(cin, cout, k, s, style=style)


def _dil(k: int) -> OpBuilder:
  return lambda cin, cout, s, style: SepConv(cin, cout, k, s, style=style, repeats=1,
                                             dilation=2)


def _conv(k: int) -> OpBuilder:
  return lambda cin, cout, s, style: ConvBN(cin, cout, k, s, style=style)


def _spatial(k: int) -> OpBuilder:
  return lambda cin, cout, s, style: SpatiallySeparableConv(cin, cout, k, s, style=style)


def _pool(kind: str, k: int) -> OpBuilder:
  return lambda cin, cout, s, style: Pool(cin, cout, kind, k, s, style=style)


_FAMILIES: dict[str, Callable[..., OpBuilder]] = {
    "zero": lambda: lambda cin, cout, s, style: Zero(cout, s),
    "identity": lambda: _identity,
    "sep": _sep, "dil": _dil, "conv": _conv, "spatial": _spatial, "pool": _pool,
}
OPS: dict[str, OpBuilder] = {name: _FAMILIES[family](*args)
                             for name, (family, *args) in jax_ops.OP_SPECS.items()}


def make_op(name: str, channels: int, stride: int, style: OpStyle, *,
            in_channels: int | None = None) -> nn.Module:
  if name not in OPS:
    raise NotImplementedError(f"op: {name!r} has no PyTorch reference "
                              f"(known: {', '.join(sorted(OPS))})")
  return OPS[name](channels if in_channels is None else in_channels, channels, stride, style)


# ----------------------------------------------------------------------------- cells

class Block(nn.Module):
  def __init__(self, block: gt.Block, node_channels: list[int], filters: int, reduction: bool,
               num_inputs: int, style: OpStyle):
    super().__init__()
    self.inputs = tuple(e.input for e in block.edges)
    self.ops = nn.ModuleList([
        make_op(e.op, filters, 2 if reduction and e.input < num_inputs else 1, style,
                in_channels=node_channels[e.input])
        for e in block.edges])
    self.combine_conv = (ConvBN(filters * len(block.edges), filters, style=style)
                         if block.combine == "concat" else None)

  def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
    outs = [op(states[i]) for i, op in zip(self.inputs, self.ops)]
    if self.combine_conv is not None:
      return self.combine_conv(torch.cat(outs, dim=1))
    return sum(outs[1:], outs[0])


class Cell(nn.Module):
  def __init__(self, cell: gt.Cell, *, c_prev_prev: int | None, c_prev: int, filters: int,
               reduction: bool, reduce_prev: bool, style: OpStyle):
    super().__init__()
    if cell.num_inputs != 2:
      raise gt.GenotypeError(f"num_inputs: a NASNet-style cell takes 2 inputs, got "
                             f"{cell.num_inputs}")
    if c_prev_prev is None:
      self.preprocess0 = None
    elif reduce_prev:
      self.preprocess0 = FactorizedReduce(c_prev_prev, filters, style=style)
    else:
      self.preprocess0 = ConvBN(c_prev_prev, filters, style=style)
    self.preprocess1 = ConvBN(c_prev, filters, style=style)
    node_channels = [c_prev if c_prev_prev is None else filters, filters]
    self.blocks = nn.ModuleList()
    for block in cell.blocks:
      self.blocks.append(Block(block, node_channels, filters, reduction, cell.num_inputs, style))
      node_channels.append(filters)
    self.concat = cell.output_nodes()
    self.out_channels = sum(node_channels[n] for n in self.concat)

  def forward(self, s0: torch.Tensor | None, s1: torch.Tensor) -> torch.Tensor:
    s0 = s1 if self.preprocess0 is None else self.preprocess0(s0)
    states = [s0, self.preprocess1(s1)]
    for block in self.blocks:
      states.append(block(states))
    return torch.cat([states[n] for n in self.concat], dim=1)


# ----------------------------------------------------------------------------- network

class AuxiliaryHead(nn.Module):
  def __init__(self, channels: int, spatial: int, pool_stride: int, num_classes: int,
               style: OpStyle):
    super().__init__()
    self.pool_size, self.pool_stride = min(5, spatial), pool_stride
    pooled = (spatial - self.pool_size) // pool_stride + 1
    self.conv_1 = ConvBN(channels, 128, style=style)
    self.conv_2 = ConvBN(128, 768, pooled, style=style, padding="valid")
    self.classifier = nn.Linear(768, num_classes)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = F.avg_pool2d(F.relu(x), self.pool_size, self.pool_stride)
    x = F.relu(self.conv_2(self.conv_1(x)))
    return self.classifier(x.mean(dim=(2, 3)))


class Stem(nn.Module):
  def __init__(self, kind: str, filters: int, style: OpStyle):
    super().__init__()
    self.kind = kind
    if kind == "darts_imagenet":
      self.conv_1 = ConvBN(3, filters // 2, 3, 2, style=style, relu=False)
      self.conv_2 = ConvBN(filters // 2, filters, 3, 2, style=style)
      self.conv_3 = ConvBN(filters, filters, 3, 2, style=style)
    else:
      stride, padding = (2, "valid") if kind == "nasnet_imagenet" else (1, "auto")
      self.conv_1 = ConvBN(3, filters, 3, stride, style=style, relu=False, padding=padding)

  def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    x = self.conv_1(x)
    if self.kind == "darts_imagenet":
      s0 = self.conv_2(x)
      return s0, self.conv_3(s0)
    if self.kind == "nasnet_imagenet":
      return None, x
    return x, x


class Network(nn.Module):
  """`net(x_nchw, return_aux=False)`; the cell plan and wiring of `models.networks.nasnet.Network`."""

  def __init__(self, genotype: gt.Genotype, config: NetworkConfig):
    super().__init__()
    if genotype.reduce is None:
      raise gt.GenotypeError("reduce: a NASNet-style network needs a reduction cell")
    check_style(config.style)
    self.config = config
    style, base = config.style, config.filters
    stem_filters = config.stem_filters or (3 * base if config.stem == "cifar" else base)
    self.stem = Stem(config.stem, stem_filters, style)
    size = stem_output_size(config.stem, config.image_size)

    plan = []
    if config.stem == "nasnet_imagenet":
      plan += [(True, base // 4), (True, base // 2)]
    for k, n in enumerate(config.normal_cells):
      if k > 0:
        plan.append((True, base * 2 ** k))
      plan += [(False, base * 2 ** k)] * n
    num_stem_cells = 2 if config.stem == "nasnet_imagenet" else 0
    self.aux_index = [i for i, (red, _) in enumerate(plan) if red][num_stem_cells + 1]

    c0 = None if config.stem == "nasnet_imagenet" else stem_filters
    c1 = stem_filters
    reduce_prev = config.stem == "darts_imagenet"
    self.cells, keep_s0 = nn.ModuleList(), []
    self.aux_head = None
    for i, (reduction, filters) in enumerate(plan):
      cell = Cell(genotype.reduce if reduction else genotype.normal, c_prev_prev=c0, c_prev=c1,
                  filters=filters, reduction=reduction, reduce_prev=reduce_prev, style=style)
      self.cells.append(cell)
      size = -(-size // 2) if reduction else size
      if config.skip_reduction_input and reduction and i >= num_stem_cells:
        c1, reduce_prev = cell.out_channels, True
        keep_s0.append(True)
      else:
        c0, c1, reduce_prev = c1, cell.out_channels, reduction
        keep_s0.append(False)
      if i == self.aux_index and config.aux_head:
        self.aux_head = AuxiliaryHead(c1, size, 3 if config.stem == "cifar" else 2,
                                      config.num_classes, style)
    self.keep_s0 = tuple(keep_s0)
    self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else None
    self.classifier = nn.Linear(c1, config.num_classes)

  def forward(self, x: torch.Tensor, return_aux: bool = False):
    s0, s1 = self.stem(x)
    aux_logits = None
    for i, (cell, keep_s0) in enumerate(zip(self.cells, self.keep_s0)):
      out = cell(s0, s1)
      s0, s1 = (s0, out) if keep_s0 else (s1, out)
      if i == self.aux_index and self.aux_head is not None and return_aux:
        aux_logits = self.aux_head(s1)
    if self.config.final_relu:
      s1 = F.relu(s1)
    features = s1.mean(dim=(2, 3))
    if self.dropout is not None:
      features = self.dropout(features)
    logits = self.classifier(features)
    return (logits, aux_logits) if return_aux else logits


def build_network(genotype: gt.Genotype, config: NetworkConfig) -> nn.Module:
  """The PyTorch twin of `models.networks.nasnet.Network(genotype, config)` (drop path left out)."""
  return Network(genotype, config)


def count_params(module: nn.Module) -> int:
  """Trainable parameters, leaving out the auxiliary head and α, as our counters do."""
  return sum(p.numel() for name, p in module.named_parameters()
             if p.requires_grad and not set(name.split(".")) & set(NOT_COUNTED))


# ----------------------------------------------------------------------------- weights

def _jax_name(owner: nn.Module, attribute: str) -> str | None:
  """Our variable name for a PyTorch parameter/buffer (None: nothing to copy)."""
  if isinstance(owner, nn.BatchNorm2d):
    return {"weight": "scale", "bias": "bias", "running_mean": "mean",
            "running_var": "var"}.get(attribute)
  if isinstance(owner, (Conv, nn.Linear)) and attribute == "weight":
    return "kernel"
  return attribute


def _torch_axes(owner: nn.Module, attribute: str) -> tuple[int, ...] | None:
  """The transpose from our layout of a tensor to PyTorch's (None: the same layout)."""
  if attribute == "weight" and isinstance(owner, Conv):
    return (3, 2, 0, 1)     # HWIO (depthwise: H, W, 1, C) -> OIHW
  if attribute == "weight" and isinstance(owner, nn.Linear):
    return (1, 0)           # (in, out) -> (out, in)
  return None


def jax_variables(jax_model: Any, *filters: Any) -> dict[str, Any]:
  """Our model's variables (default: parameters, BN statistics, α) by dotted path."""
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(nnx.state(jax_model, *filters)):
    keys = [getattr(k, "key", getattr(k, "name", None)) for k in path]
    if keys and keys[-1] == "value":
      keys = keys[:-1]
    out[".".join(str(k) for k in keys)] = leaf
  return out


def torch_shapes_in_jax_layout(module: nn.Module) -> list[tuple[int, ...]]:
  """Shapes of the parameters in our layout (conv kernels HWIO, dense kernels (in, out))."""
  owners = dict(module.named_modules())
  shapes = []
  for name, p in module.named_parameters():
    owner_name, _, attribute = name.rpartition(".")
    axes = _torch_axes(owners[owner_name], attribute)
    shape = tuple(p.shape)
    shapes.append(shape if axes is None else tuple(shape[axes.index(i)] for i in range(len(axes))))
  return shapes


def load_jax_state(torch_module: nn.Module, jax_model: Any) -> None:
  """Copies every parameter, BN statistic and α of `jax_model` into its PyTorch twin."""
  load_variables(torch_module, jax_variables(jax_model))


@torch.no_grad()
def load_variables(torch_module: nn.Module, ours: dict[str, Any]) -> None:
  """Walks the PyTorch module's parameters and buffers and copies ours at the same path
  (names are shared, layouts converted); ValueError unless both sides are used up."""
  owners = dict(torch_module.named_modules())
  used, missing = set(), []
  tensors = list(torch_module.named_parameters()) + list(torch_module.named_buffers())
  for name, tensor in tensors:
    owner_name, _, attribute = name.rpartition(".")
    owner = owners[owner_name]
    jax_attribute = _jax_name(owner, attribute)
    if jax_attribute is None:   # num_batches_tracked
      continue
    key = f"{owner_name}.{jax_attribute}" if owner_name else jax_attribute
    if key not in ours:
      missing.append(name)
      continue
    value = np.asarray(ours[key], np.float32)
    axes = _torch_axes(owner, attribute)
    value = value if axes is None else value.transpose(axes)
    if tuple(value.shape) != tuple(tensor.shape):
      raise ValueError(f"{name}: shape {tuple(tensor.shape)}, ours {key} gives "
                       f"{tuple(value.shape)}")
    tensor.copy_(torch.from_numpy(np.array(value, copy=True)))
    used.add(key)
  unused = sorted(set(ours) - used)
  if missing or unused:
    raise ValueError(f"structures differ: PyTorch-only {missing[:5]}, ours-only {unused[:5]}")


# ----------------------------------------------------------------------------- timing

def time_train_step(module: nn.Module, images_nchw: torch.Tensor, labels: torch.Tensor, *,
                    steps: int, warmup: int = 2, lr: float = 0.01) -> dict[str, Any]:
  """Times SGD (momentum 0.9) training steps with cross-entropy; the caller sets threads."""
  module.train()
  optimizer = torch.optim.SGD(module.parameters(), lr=lr, momentum=0.9)

  def step():
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(module(images_nchw), labels)
    loss.backward()
    optimizer.step()
    return loss

  return time_steps(step, steps=steps, warmup=warmup)
