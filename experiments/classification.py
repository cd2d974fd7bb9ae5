"""Image classification as pure functions on pytrees: train state, train step, eval step.

The model is split once into `graphdef` (static) and state pytrees; each step
merges them back, so the whole step is a jittable function of arrays.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import lax

from experiments.parallel import DATA_AXIS


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any        # nnx.State of nnx.Param
  model_state: Any   # everything else: BatchNorm statistics, ...
  opt_state: Any


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, Any, Any]:
  return nnx.split(model, nnx.Param, ...)


def create_train_state(model: nnx.Module, tx: optax.GradientTransformation
                       ) -> tuple[nnx.GraphDef, TrainState]:
  graphdef, params, model_state = split_model(model)
  return graphdef, TrainState(step=jnp.zeros((), jnp.int32), params=params,
                              model_state=model_state, opt_state=tx.init(params))


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def _cast_floats(tree: Any, dtype) -> Any:
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                      tree)


def _replica_mean(new: jax.Array, old: jax.Array) -> jax.Array:
  """Running statistics averaged over replicas; integer state (a genotype held as data,
  `models.networks.anycell`) is the same on every replica and passes through."""
  if not jnp.issubdtype(old.dtype, jnp.floating):
    return new
  return lax.pmean(new, DATA_AXIS).astype(old.dtype)


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, *,
                    total_steps: int, learning_rate: optax.Schedule,
                    label_smoothing: float = 0.0, aux_weight: float = 0.0,
                    drop_path_rate: float = 0.0, compute_dtype: Any = jnp.float32
                    ) -> Callable:
  """`step(state, batch, key) -> (state, metrics)`, to run under `parallel.data_parallel`.

  Drop path grows linearly from 0 to `drop_path_rate` over training (ScheduledDropPath).
  BatchNorm statistics are per device unless the model was built with a BN axis
  name; the running averages are pmean-ed so the state stays replicated.
  """
  use_aux = aux_weight > 0

  def step(state: TrainState, batch: dict[str, jax.Array], key: jax.Array):
    key = jax.random.fold_in(jax.random.fold_in(key, state.step), lax.axis_index(DATA_AXIS))
    # A literal 0.0 when off, so models may branch on it in Python.
    rate = (drop_path_rate * state.step.astype(jnp.float32) / total_steps
            if drop_path_rate > 0 else 0.0)
    images = batch["image"].astype(compute_dtype)

    def loss_fn(params):
      model = nnx.merge(graphdef, _cast_floats(params, compute_dtype), state.model_state,
                        copy=True)
      out = model(images, train=True, key=key, drop_path_rate=rate, return_aux=use_aux)
      logits, aux_logits = out if use_aux else (out, None)
      loss = cross_entropy(logits, batch["label"], label_smoothing).mean()
      if aux_logits is not None:
        loss += aux_weight * cross_entropy(aux_logits, batch["label"], label_smoothing).mean()
      _, _, new_model_state = split_model(model)
      return loss, (logits, new_model_state)

    (loss, (logits, new_model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    grads = lax.pmean(grads, DATA_AXIS)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    model_state = jax.tree.map(_replica_mean, new_model_state, state.model_state)
    metrics = {
        "loss": loss,
        "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
        "learning_rate": learning_rate(state.step),
        "drop_path_rate": rate,
        "grad_norm": optax.tree.norm(grads),
    }
    metrics = lax.pmean(metrics, DATA_AXIS)
    new_state = state.replace(step=state.step + 1, params=params, model_state=model_state,
                              opt_state=opt_state)
    return new_state, metrics

  return step


def make_eval_step(graphdef: nnx.GraphDef, compute_dtype: Any = jnp.float32) -> Callable:
  """`eval_step(state, batch) -> sums` of correct, loss and count over unmasked examples."""

  def eval_step(state: TrainState, batch: dict[str, jax.Array]):
    model = nnx.merge(graphdef, _cast_floats(state.params, compute_dtype), state.model_state)
    logits = model(batch["image"].astype(compute_dtype), train=False)
    mask = batch["mask"]
    sums = {
        "correct": jnp.sum(mask * (jnp.argmax(logits, -1) == batch["label"])),
        "loss": jnp.sum(mask * cross_entropy(logits, batch["label"])),
        "count": jnp.sum(mask),
    }
    return lax.psum(sums, DATA_AXIS)

  return eval_step
