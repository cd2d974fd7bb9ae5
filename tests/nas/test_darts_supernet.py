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
from models import ops, spaces, supernet
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
