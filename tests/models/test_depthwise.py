"""The shifted-multiply-add depthwise conv equals XLA's grouped conv, value and gradient."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.ops.depthwise import depthwise_conv2d


@pytest.mark.parametrize("size,k,stride,dilation,padding", [
    (8, 3, 1, 1, "SAME"), (8, 5, 2, 1, "SAME"), (7, 3, 2, 1, "SAME"), (9, 3, 1, 2, "SAME"),
    (8, 7, 2, 1, "VALID"), (8, 3, 2, 1, ((0, 1), (1, 1))), (5, 5, 1, 2, "SAME"),
])
def test_shifted_equals_lax_forward_and_gradient(size, k, stride, dilation, padding):
  kx, kk, kc = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (2, size, size, 6))
  kernel = jax.random.normal(kk, (k, k, 1, 6))
  cot = None

  def run(impl, x, kernel):
    return depthwise_conv2d(x, kernel, strides=(stride, stride), padding=padding,
                            dilation=(dilation, dilation), impl=impl)

  ref = run("lax", x, kernel)
  got = run("shifted", x, kernel)
  assert got.shape == ref.shape
  np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)

  cot = jax.random.normal(kc, ref.shape)
  loss = lambda impl: (lambda x, w: jnp.sum(run(impl, x, w) * cot))
  g_ref = jax.grad(loss("lax"), argnums=(0, 1))(x, kernel)
  g_got = jax.grad(loss("shifted"), argnums=(0, 1))(x, kernel)
  for a, b in zip(g_got, g_ref):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)


def test_channel_multiplier_falls_back_to_lax():
  x = jnp.ones((1, 6, 6, 3))
  kernel = jnp.ones((3, 3, 1, 6))
  out = depthwise_conv2d(x, kernel, impl="shifted")
  assert out.shape == (1, 6, 6, 6)
