"""The PNAS accuracy predictor: an ensemble of MLPs on the decision encoding.

A cell is its decision sequence with -1 for decisions it does not have yet (a
b-block cell in a B-block space); each decision becomes a one-hot block, all zeros
when absent, so cells of every size share one input layout. Each member trains
full-batch with Adam on a bootstrap resample of the data (standardized rewards,
squared error); the prediction is the members' mean. Training is one jitted loop;
data are padded to a power-of-two row count (zero weight) to bound recompiles.
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


def one_hot(choices: np.ndarray, num_choices: Sequence[int]) -> np.ndarray:
  """(N, T) choices, -1 = absent -> (N, sum(num_choices)) float32 features."""
  choices = np.asarray(choices)
  offsets = np.concatenate([[0], np.cumsum(num_choices)[:-1]])
  out = np.zeros((choices.shape[0], int(np.sum(num_choices))), np.float32)
  rows, cols = np.nonzero(choices >= 0)
  out[rows, offsets[cols] + choices[rows, cols]] = 1.0
  return out


def _init_member(key, sizes):
  layers = []
  for k, (m, n) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
    layers.append({"w": jax.random.normal(k, (m, n)) * jnp.sqrt(2.0 / m), "b": jnp.zeros(n)})
  return layers


def _forward(layers, x):
  for layer in layers[:-1]:
    x = jax.nn.relu(x @ layer["w"] + layer["b"])
  return (x @ layers[-1]["w"] + layers[-1]["b"])[..., 0]


@functools.partial(jax.jit, static_argnums=(2, 3))
def _train(key, data, sizes: tuple[int, ...], steps: int, learning_rate, weight_decay):
  """Trains the ensemble; `data` = (x (N, F), y (N,), weights (E, N) bootstrap counts)."""
  x, y, weights = data
  tx = optax.adamw(learning_rate, weight_decay=weight_decay)

  def train_member(key, w):
    params = _init_member(key, sizes)

    def loss_fn(params):
      return jnp.sum(w * (_forward(params, x) - y) ** 2) / jnp.maximum(jnp.sum(w), 1.0)

    def step(_, carry):
      params, opt_state = carry
      grads = jax.grad(loss_fn)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state

    return jax.lax.fori_loop(0, steps, step, (params, tx.init(params)))[0]

  return jax.vmap(train_member)(jax.random.split(key, weights.shape[0]), weights)


@jax.jit
def _predict(ensemble, x):
  return jax.vmap(_forward, in_axes=(0, None))(ensemble, x).mean(0)


def _padded(n: int) -> int:
  return 1 << max(n - 1, 1).bit_length()


class Surrogate:
  """Predicts a cell's reward from its (partial) decision sequence."""

  def __init__(self, num_choices: Sequence[int], *, ensemble_size: int = 5,
               hidden: Sequence[int] = (64, 64), steps: int = 100, learning_rate: float = 1e-2,
               weight_decay: float = 1e-4, seed: int = 0):
    self.num_choices = tuple(int(n) for n in num_choices)
    self.sizes = (sum(self.num_choices), *hidden, 1)
    self.ensemble_size = ensemble_size
    self.steps = steps
    self.learning_rate = learning_rate
    self.weight_decay = weight_decay
    self.rng = np.random.default_rng(seed)
    self.ensemble = None

  def fit(self, choices: np.ndarray, rewards: np.ndarray) -> "Surrogate":
    rewards = np.asarray(rewards, np.float64)
    n = len(rewards)
    if n == 0:
      raise ValueError("the surrogate needs at least one training cell")
    self.mean, self.std = float(rewards.mean()), float(rewards.std()) or 1.0
    rows = _padded(n)
    x = np.zeros((rows, self.sizes[0]), np.float32)
    x[:n] = one_hot(choices, self.num_choices)
    y = np.zeros(rows, np.float32)
    y[:n] = (rewards - self.mean) / self.std
    weights = np.zeros((self.ensemble_size, rows), np.float32)
    for e in range(self.ensemble_size):
      weights[e, :n] = np.bincount(self.rng.integers(n, size=n), minlength=n)
    key = jax.random.key(int(self.rng.integers(2**63)))
    self.ensemble = _train(key, (x, y, weights), self.sizes, self.steps,
                           jnp.float32(self.learning_rate), jnp.float32(self.weight_decay))
    return self

  def predict(self, choices: np.ndarray) -> np.ndarray:
    if self.ensemble is None:
      raise ValueError("fit the surrogate before predicting")
    n = len(choices)
    x = np.zeros((_padded(n), self.sizes[0]), np.float32)
    x[:n] = one_hot(choices, self.num_choices)
    return np.asarray(_predict(self.ensemble, x))[:n] * self.std + self.mean
