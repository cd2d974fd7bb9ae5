"""The op registry: every cell op of the four spaces, and the layers cells are built from.

`make_op(name, channels, stride, style, rngs)` builds one op; the module is called
`op(x, *, train)` on NHWC input. Stride 2 halves H and W (rounding up) and keeps the
channel count. Everything that differs between the reference implementations
(Keras/TF-slim NASNet and PNASNet, PyTorch DARTS) is a field of `OpStyle`, so one set of
layers serves them all. Adding an op is one entry in `OP_SPECS`.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from models.ops.depthwise import depthwise_conv2d
from models.ops.matmul_conv import conv2d_as_matmuls
from models.ops.pointwise import pointwise_conv2d


@dataclasses.dataclass(frozen=True)
class OpStyle:
  """Details in which reference implementations differ."""
  bn_momentum: float = 0.9            # Flax/Keras convention: running = m * running + (1 - m) * batch
  bn_epsilon: float = 1e-5
  bn_affine: bool = True
  bn_axis_name: str | None = None     # a mesh axis name: cross-replica BN; None: per-device stats
  # Stride-2 padding: "symmetric" pads (k_eff - 1) // 2 on both sides (PyTorch);
  # "same" pads TensorFlow's SAME way (the extra row/column at the end).
  stride2_padding: str = "symmetric"
  # Stride-2 pools: "exclude" ignores the padding (max pads -inf, avg averages real pixels);
  # "zeros" zero-pads first and counts the zeros (Keras NASNet's ZeroPadding2D + valid pool).
  stride2_pool_padding: str = "exclude"
  sep_conv_repeats: int = 2           # relu-sepconv-bn units stacked in sep_conv_KxK
  # identity (skip_connect) at stride 2: "factorized" (DARTS FactorizedReduce) or
  # "conv_1x1" (TF-slim/PNASNet: relu, 1x1 conv with stride 2, BN).
  reduce_identity: str = "factorized"
  dtype: Any = None                   # compute dtype (e.g. jnp.bfloat16); parameters stay float32

  def __post_init__(self):
    _check_choice("stride2_padding", self.stride2_padding, ("symmetric", "same"))
    _check_choice("stride2_pool_padding", self.stride2_pool_padding,
                  ("exclude", "zeros", "zeros_avg"))
    _check_choice("reduce_identity", self.reduce_identity, ("factorized", "conv_1x1"))


def _check_choice(field: str, value: str, known: tuple[str, ...]) -> None:
  if value not in known:
    raise ValueError(f"OpStyle.{field}: unknown {value!r} (known: {', '.join(known)})")


DARTS_STYLE = OpStyle()
KERAS_NASNET_STYLE = OpStyle(bn_momentum=0.9997, bn_epsilon=1e-3, stride2_padding="same",
                             stride2_pool_padding="zeros", reduce_identity="conv_1x1")
TF_PNASNET_STYLE = OpStyle(bn_momentum=0.9997, bn_epsilon=1e-3, stride2_padding="same",
                           reduce_identity="conv_1x1")

# ----------------------------------------------------------------------------- padding

def spatial_padding(size: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                    dilation: Sequence[int], mode: str) -> list[tuple[int, int]]:
  """Per spatial dim (before, after) padding giving ceil(size / stride) outputs."""
  pads = []
  for n, k, s, d in zip(size, kernel, stride, dilation):
    extent = (k - 1) * d + 1
    if mode == "same" and s > 1:
      total = max((-(-n // s) - 1) * s + extent - n, 0)
      pads.append((total // 2, total - total // 2))
    else:
      pads.append(((extent - 1) // 2, extent // 2))
  return pads


# ----------------------------------------------------------------------------- base layers

_DEPTHWISE_IMPL: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "depthwise_impl", default=None)
# The depthwise and 1x1 conv paths for each choice of `depthwise_impl`.
_DEPTHWISE_PATH = {"lax": "lax", "shifted": "shifted", "matmul": "shifted"}
_POINTWISE_IMPL = {"lax": "lax", "shifted": "dot", "matmul": "dot"}


@contextlib.contextmanager
def depthwise_impl(impl: str | None) -> Iterator[None]:
  """Forces the conv implementations while tracing: "lax" uses XLA's convolution for
  every conv (FLOP counting needs real convs), "shifted" the CPU fast paths (shifted
  multiply-adds for depthwise, a matrix product for 1x1), "matmul" those and every
  other conv as matrix products per kernel tap (`models.ops.matmul_conv`), None the
  backend's choice."""
  token = _DEPTHWISE_IMPL.set(impl)
  try:
    yield
  finally:
    _DEPTHWISE_IMPL.reset(token)


@contextlib.contextmanager
def control_flow_convs() -> Iterator[None]:
  """For ops traced inside `lax.switch` or a loop body: on CPU, every conv as matrix
  products, since XLA:CPU runs convolution gradients there on a generic loop."""
  if _DEPTHWISE_IMPL.get() is None and jax.default_backend() == "cpu":
    with depthwise_impl("matmul"):
      yield
  else:
    yield


class KeyStream:
  """Stands in for `nnx.Rngs` while building a network: one seed key and a Python counter.

  Drawing hundreds of keys from an `nnx.Rngs` under `nnx.eval_shape` is slow (every draw
  updates a traced counter). With a concrete seed, conv kernels are drawn on the host
  (`host`): eager JAX would compile the initializer once per kernel shape.
  """

  def __init__(self, key: jax.Array):
    self.key, self.count = key, 0
    self.host = (None if isinstance(key, jax.core.Tracer) else
                 np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist()))

  def params(self) -> jax.Array:
    self.count += 1
    return jax.random.fold_in(self.key, self.count)

  __call__ = params


def he_normal(rngs: nnx.Rngs | KeyStream, shape: Sequence[int]) -> jax.Array:
  """Truncated (at 2 sigma) normal with variance 2 / fan_in, fan_in = prod(shape[:-1])."""
  host = rngs.host if isinstance(rngs, KeyStream) else None
  if host is None:
    return nnx.initializers.he_normal()(rngs.params(), tuple(shape), jnp.float32)
  z = host.standard_normal(shape)
  while (outside := np.abs(z) > 2).any():
    z[outside] = host.standard_normal(int(outside.sum()))
  # 0.8796 is the std of a standard normal truncated to [-2, 2].
  std = np.sqrt(2.0 / np.prod(shape[:-1])) / 0.87962566103423978
  return jnp.asarray((z * std).astype(np.float32))


def _cast(x: jax.Array, style: OpStyle) -> jax.Array:
  return x if style.dtype is None else x.astype(style.dtype)


class Conv(nnx.Module):
  """Bias-free 2-D conv, HWIO kernel; padding computed from the input size and `style`."""

  def __init__(self, in_channels: int, out_channels: int, kernel: int | Sequence[int],
               stride: int | Sequence[int] = 1, *, dilation: int = 1, padding: str = "auto",
               style: OpStyle, rngs: nnx.Rngs, groups: int = 1):
    self.kernel_size = _pair(kernel)
    self.stride = _pair(stride)
    self.dilation = _pair(dilation)
    self.padding = padding            # "auto" (from style) or "valid"
    self.groups = groups
    self.style = style
    shape = (*self.kernel_size, in_channels // groups, out_channels)
    self.kernel = nnx.Param(he_normal(rngs, shape))

  def _pads(self, x: jax.Array) -> list[tuple[int, int]]:
    if self.padding == "valid":
      return [(0, 0), (0, 0)]
    return spatial_padding(x.shape[1:3], self.kernel_size, self.stride, self.dilation,
                           self.style.stride2_padding)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = _cast(x, self.style)
    kernel = _cast(self.kernel[...], self.style)
    impl = _DEPTHWISE_IMPL.get()
    if self.groups > 1 and self.groups == x.shape[-1]:
      return depthwise_conv2d(x, kernel, strides=self.stride, padding=self._pads(x),
                              dilation=self.dilation, impl=_DEPTHWISE_PATH.get(impl))
    if self.kernel_size == (1, 1) and self.groups == 1:
      return pointwise_conv2d(x, kernel, strides=self.stride, padding=self._pads(x),
                              impl=_POINTWISE_IMPL.get(impl))
    if impl == "matmul" and self.groups == 1:
      return conv2d_as_matmuls(x, kernel, strides=self.stride, padding=self._pads(x),
                               dilation=self.dilation)
    return lax.conv_general_dilated(
        x, kernel, window_strides=self.stride, padding=self._pads(x),
        rhs_dilation=self.dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=self.groups)


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class BatchNorm(nnx.Module):
  """Batch normalization over N, H, W with running statistics (`nnx.BatchStat`).

  Statistics are replaced with `set_value`: `nnx.BatchNorm`'s indexed update asks each
  traced value for its sharding, which made tracing a training step of a large cell
  network minutes long.
  """

  def __init__(self, channels: int, *, style: OpStyle, rngs: nnx.Rngs | KeyStream | None = None):
    del rngs  # deterministic initialization
    self.style = style
    if style.bn_affine:
      self.scale = nnx.Param(jnp.ones((channels,), jnp.float32))
      self.bias = nnx.Param(jnp.zeros((channels,), jnp.float32))
    else:
      self.scale = self.bias = None
    self.mean = nnx.BatchStat(jnp.zeros((channels,), jnp.float32))
    self.var = nnx.BatchStat(jnp.ones((channels,), jnp.float32))

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    style = self.style
    if train:
      xf = x.astype(jnp.float32)
      mean = jnp.mean(xf, axis=(0, 1, 2))
      mean_sq = jnp.mean(jnp.square(xf), axis=(0, 1, 2))
      if style.bn_axis_name is not None:
        mean, mean_sq = lax.pmean((mean, mean_sq), style.bn_axis_name)
      var = jnp.maximum(mean_sq - jnp.square(mean), 0.0)
      m = style.bn_momentum
      self.mean.set_value(m * self.mean[...] + (1 - m) * lax.stop_gradient(mean))
      self.var.set_value(m * self.var[...] + (1 - m) * lax.stop_gradient(var))
    else:
      mean, var = self.mean[...], self.var[...]
    mul = lax.rsqrt(var + style.bn_epsilon)
    if self.scale is not None:
      mul = mul * self.scale[...]
    shift = -mean * mul
    if self.bias is not None:
      shift = shift + self.bias[...]
    y = x.astype(jnp.float32) * mul + shift
    return y.astype(x.dtype if style.dtype is None else style.dtype)


class ConvBN(nnx.Module):
  """[ReLU] - conv - BN: the 1x1 "base" convs, ReLUConvBN, nor_conv_KxK, conv_KxK."""

  def __init__(self, in_channels: int, out_channels: int, kernel: int | Sequence[int] = 1,
               stride: int | Sequence[int] = 1, *, style: OpStyle, rngs: nnx.Rngs,
               relu: bool = True, padding: str = "auto"):
    self.relu = relu
    self.conv = Conv(in_channels, out_channels, kernel, stride, padding=padding, style=style,
                     rngs=rngs)
    self.bn = BatchNorm(out_channels, style=style, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if self.relu:
      x = jax.nn.relu(x)
    return self.bn(self.conv(x), train=train)


class FactorizedReduce(nnx.Module):
  """ReLU, two 1x1 stride-2 convs on pixel grids offset by one, concat, BN (halves H, W)."""

  def __init__(self, in_channels: int, out_channels: int, *, style: OpStyle, rngs: nnx.Rngs):
    half = out_channels // 2
    self.conv_1 = Conv(in_channels, half, 1, style=style, rngs=rngs)
    self.conv_2 = Conv(in_channels, out_channels - half, 1, style=style, rngs=rngs)
    self.bn = BatchNorm(out_channels, style=style, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = jax.nn.relu(x)
    path_1 = x[:, ::2, ::2, :]
    # Shift by one pixel, zero-filling the far edge, so odd sizes also give ceil(n / 2).
    shifted = jnp.pad(x[:, 1:, 1:, :], ((0, 0), (0, 1), (0, 1), (0, 0)))
    path_2 = shifted[:, ::2, ::2, :]
    y = jnp.concatenate([self.conv_1(path_1), self.conv_2(path_2)], axis=-1)
    return self.bn(y, train=train)


class SepConv(nnx.Module):
  """`repeats` x (ReLU, depthwise KxK, pointwise 1x1, BN); only the first unit strides.

  The first pointwise conv maps to `out_channels` (Keras/TF-slim); with in == out, as in
  every cell after the 1x1 base convs, this equals DARTS's SepConv. dil_conv_KxK is one
  unit with dilation 2.
  """

  def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, *,
               style: OpStyle, rngs: nnx.Rngs, repeats: int | None = None, dilation: int = 1):
    repeats = style.sep_conv_repeats if repeats is None else repeats
    depthwise, pointwise, bn = [], [], []
    channels = in_channels
    for r in range(repeats):
      depthwise.append(Conv(channels, channels, kernel, stride if r == 0 else 1,
                            dilation=dilation, groups=channels, style=style, rngs=rngs))
      pointwise.append(Conv(channels, out_channels, 1, style=style, rngs=rngs))
      bn.append(BatchNorm(out_channels, style=style, rngs=rngs))
      channels = out_channels
    self.depthwise = nnx.List(depthwise)
    self.pointwise = nnx.List(pointwise)
    self.bn = nnx.List(bn)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    for depthwise, pointwise, bn in zip(self.depthwise, self.pointwise, self.bn):
      x = bn(pointwise(depthwise(jax.nn.relu(x))), train=train)
    return x


class SpatiallySeparableConv(nnx.Module):
  """ReLU, 1xK conv, Kx1 conv, BN (conv_1x7_7x1, conv_1x3_3x1)."""

  def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, *,
               style: OpStyle, rngs: nnx.Rngs):
    self.conv_1xk = Conv(in_channels, out_channels, (1, kernel), (1, stride), style=style,
                         rngs=rngs)
    self.conv_kx1 = Conv(out_channels, out_channels, (kernel, 1), (stride, 1), style=style,
                         rngs=rngs)
    self.bn = BatchNorm(out_channels, style=style, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    return self.bn(self.conv_kx1(self.conv_1xk(jax.nn.relu(x))), train=train)


def pool2d(x: jax.Array, kind: str, kernel: int, stride: int, style: OpStyle) -> jax.Array:
  """Max or average pooling, output ceil(size / stride), padding per `style`."""
  window, strides = (1, kernel, kernel, 1), (1, stride, stride, 1)
  pads = spatial_padding(x.shape[1:3], (kernel, kernel), (stride, stride), (1, 1),
                         style.stride2_padding)
  mode = style.stride2_pool_padding
  if stride > 1 and (mode == "zeros" or (mode == "zeros_avg" and kind == "avg")):
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    pads = [(0, 0), (0, 0)]
    count_padding = True
  else:
    count_padding = False
  full_pads = ((0, 0), *pads, (0, 0))
  if kind == "max":
    # Concrete (numpy) init values let JAX pick the differentiable max/sum window primitives.
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, window, strides, full_pads)
  sums = lax.reduce_window(x, np.array(0, x.dtype), lax.add, window, strides, full_pads)
  if count_padding:
    return sums / (kernel * kernel)
  ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
  counts = lax.reduce_window(ones, np.array(0, x.dtype), lax.add, window, strides, full_pads)
  return sums / counts


class Pool(nnx.Module):
  """Max/avg pooling; a 1x1 conv + BN follows when the channel count changes (TF-slim)."""

  def __init__(self, in_channels: int, out_channels: int, kind: str, kernel: int, stride: int,
               *, style: OpStyle, rngs: nnx.Rngs):
    self.kind, self.kernel, self.stride, self.style = kind, kernel, stride, style
    self.project = (None if in_channels == out_channels else
                    ConvBN(in_channels, out_channels, style=style, rngs=rngs, relu=False))

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    y = pool2d(x, self.kind, self.kernel, self.stride, self.style)
    return y if self.project is None else self.project(y, train=train)


class Identity(nnx.Module):
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train
    return x


class Zero(nnx.Module):
  """The `none` op: zeros shaped like the op's output."""

  def __init__(self, out_channels: int, stride: int):
    self.out_channels, self.stride = out_channels, stride

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train
    x = x[:, ::self.stride, ::self.stride, :]
    return jnp.zeros((*x.shape[:3], self.out_channels), x.dtype)


# ----------------------------------------------------------------------------- registry

OpBuilder = Callable[[int, int, int, OpStyle, nnx.Rngs], nnx.Module]


def _identity(cin: int, cout: int, stride: int, style: OpStyle, rngs: nnx.Rngs) -> nnx.Module:
  if stride == 1 and cin == cout:
    return Identity()
  if stride == 2 and style.reduce_identity == "factorized":
    return FactorizedReduce(cin, cout, style=style, rngs=rngs)
  return ConvBN(cin, cout, 1, stride, style=style, rngs=rngs)


def _sep(k: int) -> OpBuilder:
  return lambda cin, cout, s, style, rngs: SepConv(cin, cout, k, s, style=style, rngs=rngs)


def _dil(k: int) -> OpBuilder:
  return lambda cin, cout, s, style, rngs: SepConv(cin, cout, k, s, style=style, rngs=rngs,
                                                   repeats=1, dilation=2)


def _conv(k: int) -> OpBuilder:
  return lambda cin, cout, s, style, rngs: ConvBN(cin, cout, k, s, style=style, rngs=rngs)


def _spatial(k: int) -> OpBuilder:
  return lambda cin, cout, s, style, rngs: SpatiallySeparableConv(cin, cout, k, s, style=style,
                                                                  rngs=rngs)


def _pool(kind: str, k: int) -> OpBuilder:
  return lambda cin, cout, s, style, rngs: Pool(cin, cout, kind, k, s, style=style, rngs=rngs)


# Every op as (family, family arguments); each framework maps a family to its layers.
OP_SPECS: dict[str, tuple] = {
    "none": ("zero",),
    "identity": ("identity",),
    "skip_connect": ("identity",),
    "sep_conv_3x3": ("sep", 3),
    "sep_conv_5x5": ("sep", 5),
    "sep_conv_7x7": ("sep", 7),
    "dil_conv_3x3": ("dil", 3),
    "dil_conv_5x5": ("dil", 5),
    "conv_1x1": ("conv", 1),
    "conv_3x3": ("conv", 3),
    "nor_conv_1x1": ("conv", 1),
    "nor_conv_3x3": ("conv", 3),
    "conv_1x3_3x1": ("spatial", 3),
    "conv_1x7_7x1": ("spatial", 7),
    "avg_pool_3x3": ("pool", "avg", 3),
    "max_pool_3x3": ("pool", "max", 3),
    "max_pool_5x5": ("pool", "max", 5),
    "max_pool_7x7": ("pool", "max", 7),
}

_FAMILIES: dict[str, Callable[..., OpBuilder]] = {
    "zero": lambda: lambda cin, cout, s, style, rngs: Zero(cout, s),
    "identity": lambda: _identity,
    "sep": _sep, "dil": _dil, "conv": _conv, "spatial": _spatial, "pool": _pool,
}
OPS: dict[str, OpBuilder] = {name: _FAMILIES[family](*args)
                             for name, (family, *args) in OP_SPECS.items()}


def is_identity(op: nnx.Module) -> bool:
  """Whether `op` passes its input through (drop path skips those, as in DARTS)."""
  return isinstance(op, Identity)


def make_op(name: str, channels: int, stride: int, style: OpStyle, rngs: nnx.Rngs, *,
            in_channels: int | None = None) -> nnx.Module:
  """Builds op `name` mapping `in_channels` (default `channels`) to `channels`."""
  if name not in OPS:
    from models.genotypes.genotype import GenotypeError
    raise GenotypeError(f"op: unknown op {name!r} (known: {', '.join(sorted(OPS))})")
  if stride not in (1, 2):
    raise ValueError(f"stride must be 1 or 2, got {stride}")
  return OPS[name](channels if in_channels is None else in_channels, channels, stride, style,
                   rngs)
