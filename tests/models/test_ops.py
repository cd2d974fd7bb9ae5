"""The op registry: shapes at stride 1 and 2, padding conventions, style switches."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models import ops, spaces
from models.genotypes.genotype import GenotypeError


def _rngs() -> ops.KeyStream:
  # Host-side initializers: eager JAX would compile one initializer per kernel shape.
  return ops.KeyStream(jax.random.key(0))


def _images(*shape: int) -> jax.Array:
  return jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)


def test_registry_covers_every_space_op():
  assert set(spaces.ALL_OPS) <= set(ops.OPS)


@pytest.mark.parametrize("name", spaces.ALL_OPS)
def test_op_output_shapes_at_stride_1_and_2_odd_and_even(name):
  for stride in (1, 2):
    op = ops.make_op(name, 6, stride, ops.DARTS_STYLE, _rngs(), in_channels=4)
    for size in (7, 8):
      x = jax.ShapeDtypeStruct((2, size, size, 4), jnp.float32)
      y = jax.eval_shape(lambda x: op(x, train=False), x)
      out = -(-size // stride)
      assert y.shape == (2, out, out, 6), (name, stride, size)


def test_none_is_zero_and_identity_passes_through():
  x = _images(1, 5, 5, 3)
  assert not jnp.any(ops.make_op("none", 3, 2, ops.DARTS_STYLE, _rngs())(x, train=True))
  identity = ops.make_op("identity", 3, 1, ops.DARTS_STYLE, _rngs())
  assert ops.is_identity(identity)
  np.testing.assert_array_equal(identity(x, train=True), x)


def test_identity_at_stride_2_follows_the_style():
  factorized = ops.make_op("skip_connect", 8, 2, ops.DARTS_STYLE, _rngs())
  conv = ops.make_op("identity", 8, 2, ops.TF_PNASNET_STYLE, _rngs())
  assert isinstance(factorized, ops.FactorizedReduce)
  assert isinstance(conv, ops.ConvBN) and conv.conv.stride == (2, 2)


def test_parameter_counts_of_the_building_blocks():
  def count(m):
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(m, nnx.Param)))
  c = 8
  # Two relu-depthwise-pointwise-BN units: 2 * (9c + c*c + 2c).
  assert count(ops.make_op("sep_conv_3x3", c, 1, ops.DARTS_STYLE, _rngs())) == 2 * (9 * c + c * c + 2 * c)
  # One dilated unit, 5x5.
  assert count(ops.make_op("dil_conv_5x5", c, 1, ops.DARTS_STYLE, _rngs())) == 25 * c + c * c + 2 * c
  # 1x7 then 7x1 full convs.
  assert count(ops.make_op("conv_1x7_7x1", c, 2, ops.DARTS_STYLE, _rngs())) == 14 * c * c + 2 * c
  # Two 1x1 convs to c/2 each, one BN.
  assert count(ops.FactorizedReduce(12, c, style=ops.DARTS_STYLE, rngs=_rngs())) == 12 * c + 2 * c
  # Pools are parameter-free unless they change the width (then 1x1 conv + BN).
  assert count(ops.make_op("max_pool_3x3", c, 2, ops.DARTS_STYLE, _rngs())) == 0
  assert count(ops.make_op("max_pool_3x3", c, 2, ops.DARTS_STYLE, _rngs(), in_channels=5)) == 5 * c + 2 * c


def test_same_and_symmetric_padding():
  assert ops.spatial_padding((8,), (3,), (2,), (1,), "same") == [(0, 1)]
  assert ops.spatial_padding((8,), (3,), (2,), (1,), "symmetric") == [(1, 1)]
  assert ops.spatial_padding((7,), (5,), (2,), (1,), "same") == [(2, 2)]
  assert ops.spatial_padding((8,), (3,), (1,), (2,), "same") == [(2, 2)]


def test_stride2_pool_padding_conventions():
  x = jnp.ones((1, 4, 4, 1))
  exclude = ops.pool2d(x, "avg", 3, 2, ops.DARTS_STYLE)
  zeros = ops.pool2d(x, "avg", 3, 2, ops.KERAS_NASNET_STYLE)
  np.testing.assert_allclose(exclude, 1.0)
  # Keras pads one zero row/column at the end: the last window averages 4 ones over 9.
  np.testing.assert_allclose(zeros[0, :, :, 0], [[1.0, 6 / 9], [6 / 9, 4 / 9]], rtol=1e-6)
  neg = -jnp.ones((1, 4, 4, 1))
  assert float(jnp.max(ops.pool2d(neg, "max", 3, 2, ops.DARTS_STYLE))) == -1.0
  assert float(jnp.max(ops.pool2d(neg, "max", 3, 2, ops.KERAS_NASNET_STYLE))) == 0.0


def test_factorized_reduce_reads_both_pixel_grids():
  fr = ops.FactorizedReduce(1, 2, style=ops.DARTS_STYLE, rngs=_rngs())
  fr.conv_1.kernel[...] = jnp.ones((1, 1, 1, 1))
  fr.conv_2.kernel[...] = jnp.ones((1, 1, 1, 1))
  x = jnp.arange(25.0).reshape(1, 5, 5, 1)
  y = fr(x, train=False)  # eval BN with fresh statistics is ~identity
  np.testing.assert_allclose(y[0, :, :, 0], x[0, ::2, ::2, 0], rtol=1e-3)
  shifted = jnp.pad(x[0, 1:, 1:, 0], ((0, 1), (0, 1)))[::2, ::2]
  np.testing.assert_allclose(y[0, :, :, 1], shifted, rtol=1e-3)


def test_batchnorm_train_and_eval_differ():
  op = ops.make_op("conv_3x3", 4, 1, ops.DARTS_STYLE, _rngs())
  x = _images(2, 6, 6, 4) * 3 + 1
  train, evaluated = op(x, train=True), op(x, train=False)
  assert not np.allclose(train, evaluated)
  # Train mode normalizes over the batch: per-channel mean ~0, variance ~1.
  np.testing.assert_allclose(jnp.mean(train, axis=(0, 1, 2)), 0.0, atol=1e-5)


def test_bad_names_and_styles_raise():
  with pytest.raises(GenotypeError, match="unknown op 'conv_9x9'"):
    ops.make_op("conv_9x9", 4, 1, ops.DARTS_STYLE, _rngs())
  with pytest.raises(ValueError, match="stride2_padding"):
    ops.OpStyle(stride2_padding="reflect")
