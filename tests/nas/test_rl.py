"""REINFORCE and PPO: the update moves the policy the right way, PPO clips, the search
beats random on a table with known structure, and state round-trips exactly."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models.errors import UserError
from nas import controller
from nas.loop import pack_state, unpack_state
from nas.spaces import get_search_space
from nas.strategies import make_strategy
from nas.strategies.ppo import ppo_loss
from nas.strategies.reinforce import OPTIMIZER, reinforce_loss, reinforce_update
from tests.nas import synthetic_table

NB201 = get_search_space("nb201")


def _search_regret(name: str, seed: int, budget: int = 100, **cfg) -> float:
  """One search on the synthetic table; regret of the best-reward pick's report metric."""
  strategy = make_strategy(name, NB201, seed, **cfg)
  evaluator = synthetic_table.evaluator()
  best, report = -np.inf, None
  for i in range(budget):
    genotype = strategy.ask()
    result = evaluator.evaluate(genotype, i)
    strategy.tell(genotype, result.reward)
    if result.reward > best:
      best, report = result.reward, result.metrics[synthetic_table.REPORT]
  return synthetic_table.regret(report)


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_controller_beats_random_search_on_mean_regret(name):
  repeats = 50
  random = np.asarray([_search_regret("random", s) for s in range(repeats)])
  learned = np.asarray([_search_regret(name, s) for s in range(repeats)])
  standard_error = np.sqrt(random.var() / repeats + learned.var() / repeats)
  print(f"{name}: mean regret {learned.mean():.3f} vs random {random.mean():.3f} "
        f"(se of difference {standard_error:.3f})")
  assert learned.mean() + 2 * standard_error < random.mean()


def _one_sequence_policy():
  model = controller.Controller(NB201.decisions(), 1, hidden=16, rngs=nnx.Rngs(0))
  graphdef, params = controller.split(model)
  opt_state = OPTIMIZER.init(params)
  opt_state.hyperparams["learning_rate"] = jnp.asarray(0.05, jnp.float32)
  return graphdef, params, opt_state, np.asarray([[3, 1, 4, 1, 2, 0]], np.int32)


@pytest.mark.parametrize("advantage", [1.0, -1.0])
def test_reinforce_step_moves_log_prob_with_the_advantage(advantage):
  graphdef, params, opt_state, seq = _one_sequence_policy()
  before = float(controller.log_prob_jit(graphdef, params, seq)[0][0])
  params, _, _ = reinforce_update(graphdef, params, opt_state, seq,
                                  np.asarray([advantage], np.float32), jnp.float32(0.0))
  after = float(controller.log_prob_jit(graphdef, params, seq)[0][0])
  assert np.sign(after - before) == np.sign(advantage)
  assert abs(after - before) > 1e-3


def _gradient(loss, params, *args):
  return np.concatenate([np.ravel(g) for g in jax.tree.leaves(jax.grad(loss)(params, *args))])


def test_ppo_gradient_is_reinforce_inside_the_clip_range_and_zero_outside():
  graphdef, params, _, seq = _one_sequence_policy()
  log_p = controller.log_prob_jit(graphdef, params, seq)[0]
  zero, eps = jnp.float32(0.0), jnp.float32(0.2)
  for advantage in (1.0, -1.0):
    a = np.asarray([advantage], np.float32)
    at_old_policy = _gradient(ppo_loss, params, graphdef, seq, log_p, a, zero, eps)
    plain = _gradient(reinforce_loss, params, graphdef, seq, a, zero)
    np.testing.assert_allclose(at_old_policy, plain, rtol=1e-4, atol=1e-6)
    assert np.abs(plain).max() > 1e-3
    # ratio e^{+-0.5} is past 1 +- eps in the advantage's direction: nothing left to gain
    moved = log_p - 0.5 * advantage
    np.testing.assert_array_equal(_gradient(ppo_loss, params, graphdef, seq, moved, a, zero, eps), 0.0)
    # ...but the other way round the unclipped term still pulls
    back = log_p + 0.5 * advantage
    assert np.abs(_gradient(ppo_loss, params, graphdef, seq, back, a, zero, eps)).max() > 1e-3


def _drive(strategy, steps: int, rng: np.random.Generator, lag: int = 3) -> list[str]:
  """Asks and tells with `lag` proposals outstanding (parallel workers); returns asked cells."""
  asked, waiting = [], []
  for _ in range(steps):
    g = strategy.ask()
    asked.append(repr(g))
    waiting.append(g)
    if len(waiting) > lag:
      strategy.tell(waiting.pop(0), float(rng.normal()) if rng.random() > 0.1 else None)
  return asked


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_state_round_trip_continues_identically(name):
  cfg = dict(batch_size=4, hidden=16)
  original = make_strategy(name, NB201, 7, **cfg)
  _drive(original, 14, np.random.default_rng(0))   # several updates, some pending/outstanding
  assert original.num_updates >= 2 and original.pending and original.outstanding
  restored = make_strategy(name, NB201, 99, **cfg)
  restored.load_state_dict(unpack_state(pack_state(original.state_dict())))
  assert _drive(restored, 12, np.random.default_rng(1)) == _drive(original, 12,
                                                                  np.random.default_rng(1))


def test_failed_trial_counts_as_failure_reward_and_bad_options_are_user_errors():
  strategy = make_strategy("reinforce", NB201, 0, batch_size=2, failure_reward=-5.0)
  g = strategy.ask()
  strategy.tell(g, None)
  assert strategy.pending[0][2] == -5.0
  with pytest.raises(UserError, match="batch_size"):
    make_strategy("reinforce", NB201, 0, batch_size=0)
  with pytest.raises(UserError, match="clip_epsilon"):
    make_strategy("ppo", NB201, 0, clip_epsilon=1.5)
