"""A dense conv as matrix products per kernel tap equals XLA's convolution."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from models import ops
from models.ops.matmul_conv import conv2d_as_matmuls


def _lax_conv(x, kernel, strides, padding, dilation):
  return lax.conv_general_dilated(x, kernel, window_strides=strides, padding=padding,
                                  rhs_dilation=dilation,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("kernel_hw,strides,dilation", [
    ((3, 3), (1, 1), (1, 1)), ((1, 7), (1, 2), (1, 1)), ((7, 1), (2, 1), (1, 1)),
    ((3, 3), (2, 2), (1, 1)), ((3, 3), (1, 1), (2, 2))])
def test_equals_lax_in_value_and_gradient(kernel_hw, strides, dilation):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 9, 8, 5)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(*kernel_hw, 5, 6)), jnp.float32)
  padding = ops.spatial_padding(x.shape[1:3], kernel_hw, strides, dilation, "same")
  want = _lax_conv(x, kernel, strides, padding, dilation)
  got = conv2d_as_matmuls(x, kernel, strides=strides, padding=padding, dilation=dilation)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
  cotangent = jnp.asarray(rng.normal(size=want.shape), jnp.float32)
  grads = [jax.grad(lambda x, k: jnp.sum(f(x, k) * cotangent), argnums=(0, 1))(x, kernel)
           for f in (lambda x, k: _lax_conv(x, k, strides, padding, dilation),
                     lambda x, k: conv2d_as_matmuls(x, k, strides=strides, padding=padding,
                                                    dilation=dilation))]
  for want_grad, got_grad in zip(*grads):
    np.testing.assert_allclose(got_grad, want_grad, atol=1e-5, rtol=1e-5)


def test_control_flow_convs_pick_matmuls_on_cpu_only_when_not_forced():
  conv = ops.Conv(3, 4, 3, style=ops.DARTS_STYLE, rngs=ops.KeyStream(jax.random.key(0)))
  x = jnp.ones((1, 5, 5, 3))

  def primitives():
    # A new function each time: JAX caches traces by function, not by context.
    return {e.primitive.name for e in jax.make_jaxpr(lambda x: conv(x))(x).eqns}

  assert "conv_general_dilated" in primitives()
  with ops.control_flow_convs():
    assert "conv_general_dilated" not in primitives()
  with ops.depthwise_impl("lax"), ops.control_flow_convs():
    assert "conv_general_dilated" in primitives()  # an explicit choice wins
