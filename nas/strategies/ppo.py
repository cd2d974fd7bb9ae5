"""PPO on the LSTM controller (the update NASNet used; Schulman et al., 2017).

Asks, tells, batching and the moving-baseline advantage are REINFORCE's; the update
makes `epochs` Adam steps on the clipped surrogate
`-mean(min(r A, clip(r, 1 - eps, 1 + eps) A)) - entropy_weight * mean(H)`, where
r = p_new(seq) / p_old(seq) and p_old is the probability under the policy that
sampled the sequence (kept from its ask).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from models.errors import UserError
from nas import controller
from nas.strategies.base import register
from nas.strategies.reinforce import OPTIMIZER, Reinforce


def ppo_loss(params, graphdef, choices, old_log_p, advantages, entropy_weight, clip_epsilon):
  log_p, entropy = controller.log_prob(graphdef, params, choices)
  ratio = jnp.exp(log_p - old_log_p)
  clipped = jnp.clip(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon)
  surrogate = jnp.minimum(ratio * advantages, clipped * advantages)
  return -jnp.mean(surrogate) - entropy_weight * jnp.mean(entropy)


@functools.partial(jax.jit, static_argnums=(0, 7))
def ppo_update(graphdef, params, opt_state, choices, old_log_p, advantages, entropy_weight,
               epochs: int, clip_epsilon):
  def epoch(_, carry):
    params, opt_state = carry
    grads = jax.grad(ppo_loss)(params, graphdef, choices, old_log_p, advantages,
                               entropy_weight, clip_epsilon)
    updates, opt_state = OPTIMIZER.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  return jax.lax.fori_loop(0, epochs, epoch, (params, opt_state))


@register("ppo")
class PPO(Reinforce):

  def __init__(self, space, seed: int, epochs: int = 4, clip_epsilon: float = 0.2, **kwargs):
    super().__init__(space, seed, **kwargs)
    if epochs < 1:
      raise UserError(f"strategy.ppo.epochs: must be >= 1, got {epochs}")
    if not 0.0 < clip_epsilon < 1.0:
      raise UserError(f"strategy.ppo.clip_epsilon: must be in (0, 1), got {clip_epsilon}")
    self.epochs = epochs
    self.clip_epsilon = clip_epsilon

  def _update(self, choices, old_log_p, advantages):
    return ppo_update(self.graphdef, self.params, self.opt_state, choices, old_log_p,
                      advantages, jnp.float32(self.entropy_weight), self.epochs,
                      jnp.float32(self.clip_epsilon))
