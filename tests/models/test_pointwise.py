"""The matrix-product 1x1 conv equals XLA's convolution, value and gradient."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models import ops
from models.ops.pointwise import pointwise_conv2d


@pytest.mark.parametrize("size,stride,padding", [
    (8, 1, ((0, 0), (0, 0))), (8, 2, ((0, 0), (0, 0))), (7, 2, ((0, 0), (0, 0))),
    (6, 2, ((0, 1), (1, 0))), (5, 1, ((1, 1), (1, 1))),
])
def test_dot_equals_lax_forward_and_gradient(size, stride, padding):
  kx, kk, kc = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (2, size, size, 6))
  kernel = jax.random.normal(kk, (1, 1, 6, 5))

  def run(impl, x, kernel):
    return pointwise_conv2d(x, kernel, strides=(stride, stride), padding=padding, impl=impl)

  ref = run("lax", x, kernel)
  got = run("dot", x, kernel)
  assert got.shape == ref.shape
  np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)
  cot = jax.random.normal(kc, ref.shape)
  loss = lambda impl: (lambda x, w: jnp.sum(run(impl, x, w) * cot))
  g_ref = jax.grad(loss("lax"), argnums=(0, 1))(x, kernel)
  g_got = jax.grad(loss("dot"), argnums=(0, 1))(x, kernel)
  for a, b in zip(g_got, g_ref):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_conv_layer_takes_the_fast_path_on_cpu_and_lax_when_forced():
  conv = ops.Conv(6, 4, 1, 2, style=ops.DARTS_STYLE, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 9, 9, 6))
  primitives = lambda: {e.primitive.name for e in jax.make_jaxpr(lambda x: conv(x))(x).jaxpr.eqns}
  assert "dot_general" in primitives() and "conv_general_dilated" not in primitives()
  with ops.depthwise_impl("lax"):
    assert "conv_general_dilated" in primitives()
    ref = conv(x)
  np.testing.assert_allclose(conv(x), ref, atol=1e-5, rtol=1e-5)
