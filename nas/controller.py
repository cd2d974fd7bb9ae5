"""The LSTM controller: a policy that emits a space's decisions one at a time.

As in Zoph & Le (2017) and NASNet: one LSTM step per decision, the step's input is
an embedding of the previous choice, and a softmax head per decision kind picks the
choice. Input choices use attention over earlier nodes (NASNet/ENAS): a node's
anchor is the LSTM output at the last decision of its block, the cell's own inputs
get learned anchors, and the logit of node j is `v . tanh(W_a anchor_j + W_q h)`.
Decisions with fewer choices than their head are masked. Logits are divided by a
temperature and, optionally, squashed as `c * tanh(logits)` (c = 2.5 in NASNet/ENAS).

Sampling and scoring are pure jitted functions of `(graphdef, params)` that scan
over the decisions, so compile time does not grow with the sequence length.
An input decision's choice j must mean node j of its cell (inputs first, then blocks).
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from nas.spaces.base import Decision

KINDS = ("input", "op", "combine")
_MASKED = -1e9


class Controller(nnx.Module):
  """An LSTM policy over a fixed decision sequence (static, part of the graphdef)."""

  def __init__(self, decisions: Sequence[Decision], num_inputs: int, *, hidden: int = 64,
               temperature: float = 1.0, tanh_constant: float | None = 2.5,
               rngs: nnx.Rngs):
    if not decisions:
      raise ValueError("the controller needs at least one decision")
    cells = sorted({d.cell for d in decisions})
    self.kinds = tuple(KINDS.index(d.kind) for d in decisions)
    self.num_choices = tuple(d.num_choices for d in decisions)
    self.cell_index = tuple(cells.index(d.cell) for d in decisions)
    self.num_cells = len(cells)
    self.num_inputs = num_inputs
    self.max_nodes = num_inputs + 1 + max(d.block for d in decisions)
    self.width = max(max(self.num_choices), self.max_nodes)
    self.anchor_slot = _anchor_slots(decisions, cells, num_inputs, self.max_nodes)
    self.temperature = float(temperature)
    self.tanh_constant = None if tanh_constant is None else float(tanh_constant)
    self.hidden = hidden

    init = _symmetric_uniform(0.1)   # ENAS: U(-0.1, 0.1)
    # One embedding row per (kind, choice), plus a start token.
    self.embed = nnx.Embed(len(KINDS) * self.width + 1, hidden, rngs=rngs)
    self.lstm = nnx.Linear(2 * hidden, 4 * hidden, kernel_init=init, rngs=rngs)
    self.op_head = nnx.Linear(hidden, self.width, kernel_init=init, rngs=rngs)
    self.combine_head = nnx.Linear(hidden, self.width, kernel_init=init, rngs=rngs)
    self.input_anchors = nnx.Param(init(rngs.params(), (num_inputs, hidden)))
    self.attn_anchor = nnx.Linear(hidden, hidden, use_bias=False, kernel_init=init, rngs=rngs)
    self.attn_query = nnx.Linear(hidden, hidden, use_bias=False, kernel_init=init, rngs=rngs)
    self.attn_v = nnx.Linear(hidden, 1, use_bias=False, kernel_init=init, rngs=rngs)

  def spec(self) -> dict[str, jax.Array]:
    """Per-step arrays the scan runs over."""
    return {"kind": jnp.asarray(self.kinds, jnp.int32),
            "num_choices": jnp.asarray(self.num_choices, jnp.int32),
            "cell": jnp.asarray(self.cell_index, jnp.int32),
            "anchor_slot": jnp.asarray(self.anchor_slot, jnp.int32)}

  def initial_carry(self, batch_size: int):
    zeros = jnp.zeros((batch_size, self.hidden))
    start = jnp.broadcast_to(self.embed(jnp.asarray(len(KINDS) * self.width)),
                             (batch_size, self.hidden))
    anchors = jnp.zeros((batch_size, self.num_cells * self.max_nodes, self.hidden))
    for c in range(self.num_cells):
      at = c * self.max_nodes
      anchors = anchors.at[:, at:at + self.num_inputs].set(self.input_anchors[...])
    return {"c": zeros, "h": zeros, "x": start, "anchors": anchors}

  def logits(self, carry, step):
    """Advances the LSTM by one step; returns the new carry and masked logits (B, width)."""
    gates = self.lstm(jnp.concatenate([carry["x"], carry["h"]], axis=-1))
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * carry["c"] + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)

    nodes = jax.lax.dynamic_slice_in_dim(carry["anchors"], step["cell"] * self.max_nodes,
                                         self.max_nodes, axis=1)
    attention = jnp.tanh(self.attn_anchor(nodes) + self.attn_query(h)[:, None, :])
    input_logits = self.attn_v(attention)[..., 0]
    input_logits = jnp.pad(input_logits, ((0, 0), (0, self.width - self.max_nodes)))
    logits = jnp.stack([input_logits, self.op_head(h), self.combine_head(h)])[step["kind"]]

    logits = logits / self.temperature
    if self.tanh_constant is not None:
      logits = self.tanh_constant * jnp.tanh(logits)
    valid = jnp.arange(self.width) < step["num_choices"]
    logits = jnp.where(valid, logits, _MASKED)

    slot = step["anchor_slot"]
    written = carry["anchors"].at[:, jnp.maximum(slot, 0)].set(h)
    anchors = jnp.where(slot >= 0, written, carry["anchors"])
    return {"c": c, "h": h, "x": carry["x"], "anchors": anchors}, logits

  def feed(self, carry, step, choice):
    """Makes `choice` (B,) the next step's input."""
    token = step["kind"] * self.width + choice
    return {**carry, "x": self.embed(token)}


def _symmetric_uniform(scale: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)
  return init


def _anchor_slots(decisions, cells, num_inputs, max_nodes) -> tuple[int, ...]:
  """For each step, the anchor slot its output fills (-1: none): the last step of a block."""
  last_step = {}
  for t, d in enumerate(decisions):
    last_step[(d.cell, d.block)] = t
  slots = [-1] * len(decisions)
  for (cell, block), t in last_step.items():
    slots[t] = cells.index(cell) * max_nodes + num_inputs + block
  return tuple(slots)


def _log_softmax_stats(logits, choice):
  log_p = jax.nn.log_softmax(logits)
  chosen = jnp.take_along_axis(log_p, choice[:, None], axis=-1)[:, 0]
  entropy = -jnp.sum(jnp.where(logits > _MASKED / 2, jnp.exp(log_p) * log_p, 0.0), axis=-1)
  return chosen, entropy


@functools.partial(jax.jit, static_argnums=(0, 3))
def sample(graphdef, params, key, batch_size: int):
  """Samples `batch_size` sequences: (choices (B, T) int32, log_prob (B,), entropy (B,))."""
  model = nnx.merge(graphdef, params)
  spec = model.spec()
  keys = jax.random.split(key, len(model.kinds))

  def step_fn(carry, xs):
    step, k = xs
    carry, logits = model.logits(carry, step)
    choice = jax.random.categorical(k, logits).astype(jnp.int32)
    log_p, entropy = _log_softmax_stats(logits, choice)
    return model.feed(carry, step, choice), (choice, log_p, entropy)

  _, (choices, log_p, entropy) = jax.lax.scan(step_fn, model.initial_carry(batch_size),
                                              (spec, keys))
  return choices.T, log_p.sum(0), entropy.sum(0)


def log_prob(graphdef, params, choices):
  """Log-probability and entropy (each (B,)) of given sequences `choices` (B, T)."""
  model = nnx.merge(graphdef, params)
  spec = model.spec()

  def step_fn(carry, xs):
    step, choice = xs
    carry, logits = model.logits(carry, step)
    log_p, entropy = _log_softmax_stats(logits, choice)
    return model.feed(carry, step, choice), (log_p, entropy)

  choices = jnp.asarray(choices, jnp.int32)
  _, (log_p, entropy) = jax.lax.scan(step_fn, model.initial_carry(choices.shape[0]),
                                     (spec, choices.T))
  return log_p.sum(0), entropy.sum(0)


log_prob_jit = jax.jit(log_prob, static_argnums=0)


def split(model: Controller):
  """(graphdef, params): the controller as a pure function and its trainable state."""
  return nnx.split(model, nnx.Param)
