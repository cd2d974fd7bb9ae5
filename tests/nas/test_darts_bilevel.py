"""The DARTS hypergradient on a toy mixed-op model, in float64."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import enable_x64

from nas.darts import bilevel, derive

XI = 0.05


def toy_loss(w, alpha, state, batch):
  """Two edges, each a softmax(α)-weighted sum of three ops on x @ W_e, then a readout."""
  x, y = batch
  hidden = 0.0
  for e in range(2):
    u = x @ w["edge"][e]
    candidates = jnp.stack([jnp.tanh(u), u, 0.3 * u * u])
    hidden = hidden + jnp.tensordot(jax.nn.softmax(alpha[e]), candidates, axes=1)
  loss = jnp.mean((hidden @ w["readout"] - y) ** 2)
  return loss, (state, {"loss": loss})


def toy_problem(seed=0):
  r = np.random.default_rng(seed)
  w = {"edge": jnp.asarray(r.normal(size=(2, 3, 4)) * 0.5),
       "readout": jnp.asarray(r.normal(size=(4, 2)) * 0.5)}
  alpha = jnp.asarray(r.normal(size=(2, 3)))
  batch = lambda: (jnp.asarray(r.normal(size=(16, 3))), jnp.asarray(r.normal(size=(16, 2))))
  return w, alpha, batch(), batch()


def unrolled_val_loss(alpha, w, train, val, **unroll):
  grad_w = jax.grad(toy_loss, has_aux=True)(w, alpha, None, train)[0]
  w1 = bilevel.unrolled_weights(w, grad_w, XI, **unroll)
  return toy_loss(w1, alpha, None, val)[0]


def central_difference(f, x, h=1e-5):
  x = np.asarray(x)
  out = np.zeros_like(x)
  for i in np.ndindex(x.shape):
    d = np.zeros_like(x)
    d[i] = h
    out[i] = (f(jnp.asarray(x + d)) - f(jnp.asarray(x - d))) / (2 * h)
  return out


@pytest.mark.parametrize("unroll", [{}, {"momentum": 0.9, "weight_decay": 3e-2}])
def test_second_order_hypergradient_matches_brute_force(unroll):
  with enable_x64():
    w, alpha, train, val = toy_problem()
    buffer = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), w) if unroll else None
    kw = dict(unroll, momentum_buffer=buffer) if unroll else {}
    exact, _ = bilevel.alpha_grad_second_order(toy_loss, w, alpha, None, train, val, XI,
                                               hvp="exact", **kw)
    fd, _ = bilevel.alpha_grad_second_order(toy_loss, w, alpha, None, train, val, XI,
                                            hvp="finite_difference", **kw)
    brute = central_difference(lambda a: unrolled_val_loss(a, w, train, val, **kw), alpha)
    through_unroll = jax.grad(unrolled_val_loss)(alpha, w, train, val, **kw)
    first = bilevel.alpha_grad_first_order(toy_loss, w, alpha, None, val)[0]
    assert exact.dtype == jnp.float64
    np.testing.assert_allclose(exact, brute, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(exact, through_unroll, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fd, exact, rtol=1e-3, atol=1e-6)
    # The second-order term matters here, so the comparison above is not vacuous.
    assert np.abs(np.asarray(first) - np.asarray(exact)).max() > 1e-3


def test_mixed_hvp_finite_difference_converges_to_exact():
  with enable_x64():
    w, alpha, train, _ = toy_problem(1)
    v = jax.tree.map(lambda p: jnp.sin(jnp.arange(p.size, dtype=p.dtype)).reshape(p.shape), w)
    exact = bilevel.mixed_hvp_exact(toy_loss, w, alpha, None, train, v)
    errors = [np.abs(bilevel.mixed_hvp_finite_difference(toy_loss, w, alpha, None, train, v,
                                                         scale=s) - exact).max()
              for s in (1e-1, 1e-2)]
    # Central differences: error shrinks like ε², i.e. ~100x for 10x smaller ε.
    assert errors[1] < errors[0] / 50


def test_first_order_is_validation_gradient():
  w, alpha, _, val = toy_problem(2)
  g, (loss, _) = bilevel.alpha_grad_first_order(toy_loss, w, alpha, None, val)
  np.testing.assert_allclose(g, jax.grad(lambda a: toy_loss(w, a, None, val)[0])(alpha),
                             rtol=1e-6)
  np.testing.assert_allclose(loss, toy_loss(w, alpha, None, val)[0], rtol=1e-6)


def test_unrolled_step_equals_optax_sgd_step():
  """μ, λ and the buffer reproduce the next step of the weight optimizer DARTS uses."""
  w, alpha, train, _ = toy_problem(3)
  tx = optax.chain(optax.add_decayed_weights(3e-4), optax.sgd(0.025, momentum=0.9))
  opt_state = tx.init(w)
  g = jax.grad(toy_loss, has_aux=True)(w, alpha, None, train)[0]
  for _ in range(2):  # a non-zero momentum buffer
    updates, opt_state = tx.update(g, opt_state, w)
  predicted = bilevel.unrolled_weights(w, g, 0.025, momentum=0.9, weight_decay=3e-4,
                                       momentum_buffer=bilevel.momentum_buffer_of(opt_state))
  updates, _ = tx.update(g, opt_state, w)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               predicted, optax.apply_updates(w, updates))


def test_derive_picks_top_two_edges_by_strongest_non_none_op():
  ops = ("none", "skip_connect", "sep_conv_3x3", "max_pool_3x3", "avg_pool_3x3",
         "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
  alpha = np.zeros((14, 8))
  alpha[:, 0] = 5.0  # `none` dominates everywhere and must be ignored
  alpha[0, 2] = alpha[1, 1] = 1.0                       # node 2: edges 0, 1
  alpha[2, 3], alpha[4, 5], alpha[3, 6] = 1.0, 2.0, 0.5  # node 3: inputs 0 and 2
  alpha[8, 7], alpha[6, 4] = 3.0, 2.0                   # node 4: inputs 3 and 1
  alpha[13, 2], alpha[12, 1] = 1.0, 1.5                 # node 5: inputs 4 and 3
  g = derive.derive(alpha, alpha, ops)
  pairs = [[(e.op, e.input) for e in b.edges] for b in g.normal.blocks]
  assert pairs == [[("sep_conv_3x3", 0), ("skip_connect", 1)],
                   [("max_pool_3x3", 0), ("sep_conv_5x5", 2)],
                   [("avg_pool_3x3", 1), ("dil_conv_5x5", 3)],
                   [("skip_connect", 3), ("sep_conv_3x3", 4)]]
  assert g.normal.concat == (2, 3, 4, 5) and g.space == "darts"


def test_derive_single_cell_keeps_every_edge_with_argmax_op():
  ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
  alpha = np.zeros((6, 5))
  for row, op in enumerate([3, 0, 1, 2, 4, 3]):
    alpha[row, op] = 1.0
  g = derive.derive_single_cell(alpha, ops)
  pairs = [[(e.op, e.input) for e in b.edges] for b in g.normal.blocks]
  assert pairs == [[("nor_conv_3x3", 0)], [("none", 0), ("skip_connect", 1)],
                   [("nor_conv_1x1", 0), ("avg_pool_3x3", 1), ("nor_conv_3x3", 2)]]
