"""The LSTM controller: a proper distribution over sequences, masking, clipping, one trace."""
from __future__ import annotations

import itertools

import jax
import numpy as np
from flax import nnx

from nas import controller
from nas.spaces import get_search_space
from nas.spaces.base import Decision

# Two blocks with every decision kind; head widths differ from most choice counts.
TINY = [Decision("input", 2, "normal", 0, 0), Decision("op", 3, "normal", 0, 0),
        Decision("input", 3, "normal", 1, 0), Decision("op", 5, "normal", 1, 0),
        Decision("combine", 2, "normal", 1)]


def _policy(decisions, **kwargs):
  return controller.split(controller.Controller(decisions, 2, hidden=16, rngs=nnx.Rngs(0),
                                                **kwargs))


def _scaled(params, factor):
  return jax.tree.map(lambda x: x * factor, params)


def test_probabilities_of_all_sequences_sum_to_one():
  graphdef, params = _policy(TINY)
  params = _scaled(params, 10.0)  # a peaked policy, so a masking slip would show
  every = np.asarray(list(itertools.product(*(range(d.num_choices) for d in TINY))))
  log_p, _ = controller.log_prob_jit(graphdef, params, every)
  np.testing.assert_allclose(np.exp(np.asarray(log_p, np.float64)).sum(), 1.0, atol=1e-4)


def test_samples_respect_choice_counts_and_match_log_prob():
  space = get_search_space("nasnet")
  graphdef, params = controller.split(controller.Controller(
      space.decisions(), space.rules.num_inputs, hidden=16, rngs=nnx.Rngs(1)))
  choices, log_p, entropy = controller.sample(graphdef, params, jax.random.key(0), 64)
  choices = np.asarray(choices)
  counts = np.asarray([d.num_choices for d in space.decisions()])
  assert choices.shape == (64, len(counts))
  assert (choices >= 0).all() and (choices < counts).all()
  # every choice value is reachable: a head that never picks its last entry is masked wrong
  assert (choices.max(0) == counts - 1).mean() > 0.9
  for c in choices[:4]:
    space.decode(c)
  again, entropy_again = controller.log_prob_jit(graphdef, params, choices)
  np.testing.assert_allclose(again, log_p, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(entropy_again, entropy, rtol=1e-5, atol=1e-4)


def _with_op_bias(params, bias):
  pure = nnx.to_pure_dict(params)
  pure["op_head"]["bias"] = np.asarray(bias, np.float32)
  nnx.replace_by_pure_dict(params, pure)
  return params


def test_tanh_constant_bounds_the_logits():
  one = [Decision("op", 5, "normal", 0, 0)]
  bias = [0.0, 0.0, 0.0, 50.0, -50.0]
  bound = 2 * 2.5 + np.log(5)   # |logit| <= c, so log p >= -2c - log(n)
  every = np.arange(5)[:, None]
  graphdef, params = _policy(one, tanh_constant=2.5)
  clipped, _ = controller.log_prob_jit(graphdef, _with_op_bias(params, bias), every)
  assert np.asarray(clipped).min() >= -bound - 1e-4
  graphdef, params = _policy(one, tanh_constant=None)
  free, _ = controller.log_prob_jit(graphdef, _with_op_bias(params, bias), every)
  assert np.asarray(free).min() < -90.0


def test_high_temperature_gives_near_uniform_policy():
  graphdef, params = _policy(TINY, temperature=1e4)
  _, _, entropy = controller.sample(graphdef, _scaled(params, 10.0), jax.random.key(1), 8)
  uniform = sum(np.log(d.num_choices) for d in TINY)
  np.testing.assert_allclose(entropy, uniform, rtol=1e-3)


def test_sampling_compiles_once_for_new_params_and_keys():
  graphdef, params = _policy(TINY)
  controller.sample(graphdef, params, jax.random.key(0), 3)
  before = controller.sample._cache_size()
  for k in range(3):
    controller.sample(graphdef, _scaled(params, 1.0 + k), jax.random.key(k), 3)
  # a second controller of the same configuration reuses the compiled function
  other_graphdef, other_params = _policy(TINY)
  controller.sample(other_graphdef, other_params, jax.random.key(5), 3)
  assert controller.sample._cache_size() == before
