"""The supernet's α variables, and the search on small synthetic tasks."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from experiments import parallel
from models import ops, spaces
from models.networks import supernet
from nas.darts import bilevel, derive

NB201_OPS = spaces.NB201.ops
SKIP = NB201_OPS.index("skip_connect")


def test_alpha_is_its_own_variable_type_with_its_own_optimizer():
  model = supernet.SearchNetwork(num_classes=3, space="nb201", layers=3, channels=2, steps=2,
                                 multiplier=2, rngs=nnx.Rngs(0))
  _, weights, alpha, _ = supernet.split(model)
  assert set(alpha.keys()) == {"alpha_normal", "alpha_reduce"}
  assert alpha["alpha_normal"][...].shape == (5, len(NB201_OPS))  # 2 + 3 edges
  assert not any(v.shape == (5, len(NB201_OPS)) for v in jax.tree.leaves(weights))
  before = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
  optimizer = nnx.Optimizer(model, optax.sgd(1.0), wrt=supernet.ArchParam)
  grads = nnx.grad(lambda m: jnp.sum(m.alpha_normal[...]) + jnp.sum(m.alpha_reduce[...]),
                   argnums=nnx.DiffState(0, supernet.ArchParam))(model)
  old_alpha = np.asarray(alpha["alpha_normal"][...])
  optimizer.update(model, grads)
  np.testing.assert_allclose(model.alpha_normal[...], old_alpha - 1.0, rtol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, nnx.state(model, nnx.Param), before)


class TwoEdges(nnx.Module):
  """One node fed by two inputs through mixed ops: the smallest search cell."""

  def __init__(self, style: ops.OpStyle, rngs: nnx.Rngs, channels: int = 4):
    self.edges = nnx.List([supernet.MixedOp(NB201_OPS, channels, 1, style, rngs)
                           for _ in range(2)])
    self.alpha = supernet.ArchParam(1e-3 * jax.random.normal(rngs.params(), (2, 5)))

  def __call__(self, x0, x1, *, train):
    weights = jax.nn.softmax(self.alpha[...], axis=-1)
    return sum(e(x, w, train=train) for e, x, w in zip(self.edges, (x0, x1), weights))


def make_task(style, seed=0):
  """Target = x1: `skip_connect` on the edge from x1 is the one right op."""
  model = TwoEdges(style, nnx.Rngs(seed))
  graphdef, w, alpha, state = nnx.split(model, nnx.Param, supernet.ArchParam, ...)

  def loss_fn(w, alpha, state, batch):
    m = nnx.merge(graphdef, w, alpha, state, copy=True)
    x0, x1 = batch
    loss = jnp.mean((m(x0, x1, train=True) - x1) ** 2)
    return loss, (nnx.split(m, nnx.Param, supernet.ArchParam, ...)[3], {})

  return loss_fn, w, alpha, state


def make_batches(steps, n, seed=0):
  r = np.random.default_rng(seed)
  return [tuple(jnp.asarray(r.normal(size=(n, 6, 6, 4)), jnp.float32) for _ in range(2))
          for _ in range(2 * steps)]


def run_search(loss_fn, w, alpha, state, batches, steps, axis_name=None):
  w_tx = optax.sgd(0.05, momentum=0.9)
  a_tx = optax.adam(0.05, b1=0.5, b2=0.999)
  carry = (w, alpha, state, w_tx.init(w), a_tx.init(alpha))
  trajectory = []
  for t in range(steps):
    w, alpha, state, w_opt, a_opt, _ = bilevel.search_step(
        loss_fn, *carry, batches[2 * t], batches[2 * t + 1], w_tx=w_tx, alpha_tx=a_tx, xi=0.05,
        order=2, momentum=0.9, axis_name=axis_name)
    carry = (w, alpha, state, w_opt, a_opt)
    trajectory.append(alpha["alpha"][...])
  return jnp.stack(trajectory)


def test_search_puts_the_largest_alpha_on_the_one_right_op():
  loss_fn, w, alpha, state = make_task(ops.OpStyle(bn_affine=False))
  steps = 25
  batches = make_batches(steps, 8)
  trajectory = jax.jit(functools.partial(run_search, loss_fn, steps=steps))(
      w, alpha, state, batches)
  weights = derive.softmax(np.asarray(trajectory[-1]))
  weights[:, NB201_OPS.index("none")] = 0.0
  assert np.unravel_index(np.argmax(weights), weights.shape) == (1, SKIP)
  assert weights[1, SKIP] > 0.4  # from 0.2 at the start


def test_four_devices_follow_the_one_device_alpha_trajectory():
  """Cross-replica BN makes 4 devices x 4 examples the same computation as 1 x 16."""
  loss_fn, w, alpha, state = make_task(ops.OpStyle(bn_affine=False,
                                                   bn_axis_name=parallel.DATA_AXIS))
  steps = 3
  batches = make_batches(steps, 16, seed=1)

  def per_device(w, alpha, state, batches):
    trajectory = run_search(loss_fn, w, alpha, state, batches, steps, parallel.DATA_AXIS)
    return trajectory, trajectory[None]

  trajectories = {}
  for n in (1, 4):
    mesh = parallel.make_mesh(jax.devices()[:n])
    sharded = jax.device_put(batches, NamedSharding(mesh, P(parallel.DATA_AXIS)))
    run = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(), P(),
                                                                 P(parallel.DATA_AXIS)),
                                out_specs=(P(), P(parallel.DATA_AXIS))))
    trajectories[n], per_replica = run(w, alpha, state, sharded)
    assert per_replica.shape[0] == n
    for replica in per_replica:  # every device holds the same α
      np.testing.assert_array_equal(replica, per_replica[0])
  assert np.abs(np.asarray(trajectories[1][-1] - alpha["alpha"][...])).max() > 1e-2
  np.testing.assert_allclose(trajectories[4], trajectories[1], rtol=1e-4, atol=1e-5)


def _edge_op(source_edges: supernet.SourceEdges, e: int) -> supernet.MixedOp:
  """Edge `e` of a stacked `SourceEdges`, as a standalone MixedOp."""
  graphdef, state = nnx.split(source_edges.mixed)
  return nnx.merge(graphdef, jax.tree.map(lambda x: x[e], state))


def test_grouped_search_cell_equals_the_per_edge_sum():
  """Each node = sum over earlier nodes j of MixedOp_(j->node)(h_j), with α row edge_index."""
  style = ops.OpStyle(bn_affine=False)
  steps, channels = 2, 4
  train = True  # BN normalizes with the batch: each edge must see its own input
  for reduction in (False, True):
    cell = supernet.SearchCell(spaces.DARTS.ops, steps=steps, multiplier=2, C_prev_prev=3,
                               C_prev=5, C=channels, reduction=reduction, reduction_prev=False,
                               style=style, rngs=nnx.Rngs(1))
    r = np.random.default_rng(0)
    s0, s1 = (jnp.asarray(r.normal(size=(2, 8, 8, c)), jnp.float32) for c in (3, 5))
    weights = jax.nn.softmax(jnp.asarray(r.normal(size=(supernet.edge_count(steps),
                                                        len(spaces.DARTS.ops)))), -1)

    @nnx.jit
    def grouped_and_per_edge(cell, s0, s1, weights):
      got = cell(s0, s1, weights, train=train)
      states = [cell.preprocess0(s0, train=train), cell.preprocess1(s1, train=train)]
      for node in range(steps):
        states.append(sum(
            _edge_op(cell.sources[j], cell.targets[j].index(node))(
                h, weights[supernet.edge_index(node, j)], train=train)
            for j, h in enumerate(states)))
      return got, jnp.concatenate(states[-2:], axis=-1)

    got, want = grouped_and_per_edge(cell, s0, s1, weights)
    assert got.shape == want.shape == ((2, 4, 4, 2 * channels) if reduction
                                       else (2, 8, 8, 2 * channels))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_edge_index_follows_darts_row_order():
  rows = [supernet.edge_index(node, j) for node in range(4) for j in range(2 + node)]
  assert rows == list(range(14))
