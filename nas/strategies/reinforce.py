"""REINFORCE on the LSTM controller (Zoph & Le, 2017).

Each ask samples one decision sequence from the current policy. Tells collect in a
buffer; every `batch_size` of them make one Adam step on
`-mean(A * log p(seq)) - entropy_weight * mean(H)`, where the advantage A is the
reward minus an exponential moving average of past rewards, divided by a moving
estimate of the rewards' spread so that learning rates do not depend on the
reward's units. A failed trial (reward None) counts as `failure_reward`.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from models.errors import UserError
from models.genotypes.genotype import Genotype, genotype_hash
from nas import controller
from nas.strategies.base import Strategy, register

# One transformation for every strategy instance, so the jitted updates compile once;
# the learning rate lives in the optimizer state.
OPTIMIZER = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)


def reinforce_loss(params, graphdef, choices, advantages, entropy_weight):
  log_p, entropy = controller.log_prob(graphdef, params, choices)
  return -jnp.mean(advantages * log_p) - entropy_weight * jnp.mean(entropy)


@functools.partial(jax.jit, static_argnums=0)
def reinforce_update(graphdef, params, opt_state, choices, advantages, entropy_weight):
  loss, grads = jax.value_and_grad(reinforce_loss)(params, graphdef, choices, advantages,
                                                   entropy_weight)
  updates, opt_state = OPTIMIZER.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


@register("reinforce")
class Reinforce(Strategy):

  def __init__(self, space, seed: int, batch_size: int = 10, learning_rate: float = 0.01,
               entropy_weight: float = 1e-3, baseline_decay: float = 0.9, hidden: int = 64,
               temperature: float = 1.0, tanh_constant: float | None = 2.5,
               failure_reward: float = 0.0):
    super().__init__(space, seed)
    if batch_size < 1:
      raise UserError(f"strategy.{self.name}.batch_size: must be >= 1, got {batch_size}")
    if not 0.0 <= baseline_decay < 1.0:
      raise UserError(f"strategy.{self.name}.baseline_decay: must be in [0, 1), got "
                      f"{baseline_decay}")
    if temperature <= 0:
      raise UserError(f"strategy.{self.name}.temperature: must be > 0, got {temperature}")
    self.batch_size = batch_size
    self.entropy_weight = entropy_weight
    self.baseline_decay = baseline_decay
    self.failure_reward = failure_reward
    model = controller.Controller(space.decisions(), space.rules.num_inputs, hidden=hidden,
                                  temperature=temperature, tanh_constant=tanh_constant,
                                  rngs=nnx.Rngs(int(self.rng.integers(2**31))))
    self.graphdef, self.params = controller.split(model)
    self.opt_state = OPTIMIZER.init(self.params)
    self.opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    self.baseline: float | None = None
    self.spread: float | None = None   # moving mean of (reward - baseline)^2
    self.num_updates = 0
    # hash -> [[choices, log_prob], ...] for asks not told yet; told samples wait in `pending`.
    self.outstanding: dict[str, list[list[Any]]] = {}
    self.pending: list[tuple[list[int], float, float]] = []

  # ----------------------------------------------------------------------------- ask / tell

  def ask(self) -> Genotype:
    key = jax.random.key(int(self.rng.integers(2**63)))
    choices, log_p, _ = jax.device_get(controller.sample(self.graphdef, self.params, key, 1))
    genotype = self.space.decode([int(c) for c in choices[0]])
    self.outstanding.setdefault(genotype_hash(genotype), []).append(
        [[int(c) for c in choices[0]], float(log_p[0])])
    return genotype

  def tell(self, genotype: Genotype, reward: float | None) -> None:
    records = self.outstanding.get(genotype_hash(genotype))
    if records:
      choices, log_p = records.pop(0)
      if not records:
        del self.outstanding[genotype_hash(genotype)]
    else:  # not asked by this policy (e.g. seeded from a trial store): score it now
      choices = self.space.encode(genotype)
      log_p = float(controller.log_prob_jit(self.graphdef, self.params,
                                            np.asarray([choices]))[0][0])
    reward = self.failure_reward if reward is None else float(reward)
    self.pending.append((choices, log_p, reward))
    if len(self.pending) >= self.batch_size:
      batch, self.pending = self.pending[:self.batch_size], self.pending[self.batch_size:]
      self._learn(batch)

  # ----------------------------------------------------------------------------- learning

  def _advantages(self, rewards: np.ndarray) -> np.ndarray:
    """Rewards minus the moving baseline, over its moving spread; then updates both."""
    if self.baseline is None:
      self.baseline = float(rewards.mean())
      self.spread = float(rewards.var())
    advantages = (rewards - self.baseline) / np.sqrt(self.spread + 1e-8)
    d = self.baseline_decay
    for r in rewards:
      self.spread = d * self.spread + (1 - d) * (float(r) - self.baseline) ** 2
      self.baseline = d * self.baseline + (1 - d) * float(r)
    return advantages.astype(np.float32)

  def _learn(self, batch: list[tuple[list[int], float, float]]) -> None:
    choices = np.asarray([c for c, _, _ in batch], np.int32)
    old_log_p = np.asarray([lp for _, lp, _ in batch], np.float32)
    advantages = self._advantages(np.asarray([r for _, _, r in batch], np.float64))
    self.params, self.opt_state = self._update(choices, old_log_p, advantages)
    self.num_updates += 1

  def _update(self, choices, old_log_p, advantages):
    del old_log_p
    params, opt_state, _ = reinforce_update(self.graphdef, self.params, self.opt_state,
                                            choices, advantages,
                                            jnp.float32(self.entropy_weight))
    return params, opt_state

  # ----------------------------------------------------------------------------- state

  def state_dict(self) -> dict[str, Any]:
    return {
        **super().state_dict(),
        "params": jax.tree.map(np.asarray, nnx.to_pure_dict(self.params)),
        "opt_state": [np.asarray(x) for x in jax.tree.leaves(self.opt_state)],
        "baseline": self.baseline,
        "spread": self.spread,
        "num_updates": self.num_updates,
        "outstanding": {h: [[list(c), lp] for c, lp in recs] for h, recs in self.outstanding.items()},
        "pending": [[list(c), lp, r] for c, lp, r in self.pending],
    }

  def load_state_dict(self, state: dict[str, Any]) -> None:
    super().load_state_dict(state)
    nnx.replace_by_pure_dict(self.params, jax.tree.map(jnp.asarray, state["params"]))
    treedef = jax.tree.structure(self.opt_state)
    self.opt_state = jax.tree.unflatten(treedef, [jnp.asarray(x) for x in state["opt_state"]])
    self.baseline = None if state["baseline"] is None else float(state["baseline"])
    self.spread = None if state["spread"] is None else float(state["spread"])
    self.num_updates = int(state["num_updates"])
    self.outstanding = {h: [[[int(x) for x in c], float(lp)] for c, lp in recs]
                        for h, recs in state["outstanding"].items()}
    self.pending = [([int(x) for x in c], float(lp), float(r)) for c, lp, r in state["pending"]]
