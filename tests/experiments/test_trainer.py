"""Data-parallel step, loop, schedules and checkpoints, on tiny models and 4 CPU devices."""
from __future__ import annotations

import os
import signal

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from experiments import checkpointing, classification, optim, parallel, periodic, trainer
from experiments.metrics_writer import MetricsWriter
from models.errors import UserError
from tests.experiments.tiny_models import TinyCNN

BATCH = 8


def _batch(seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {"image": rng.normal(size=(BATCH, 8, 8, 3)).astype(np.float32),
          "label": rng.integers(0, 10, BATCH).astype(np.int32)}


def _run_steps(devices, make_model, steps=1, **step_kwargs):
  mesh = parallel.make_mesh(devices)
  tx = optax.sgd(0.1, momentum=0.9)
  graphdef, state = classification.create_train_state(make_model(), tx)
  state = parallel.replicate(state, mesh)
  step = parallel.data_parallel(classification.make_train_step(
      graphdef, tx, total_steps=10, learning_rate=lambda s: 0.1, **step_kwargs), mesh)
  for i in range(steps):
    state, metrics = step(state, parallel.to_global(_batch(i), mesh), jax.random.key(0))
  return jax.device_get(state), jax.device_get(metrics)


def _max_diff(a, b) -> float:
  return max((float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))),
             default=0.0)


@pytest.mark.parametrize("batch_norm", [False, True], ids=["no_bn", "cross_replica_bn"])
def test_four_devices_match_one_device(batch_norm):
  assert jax.device_count() == 4
  make = lambda: TinyCNN(batch_norm=batch_norm, bn_axis_name="data" if batch_norm else None,
                         rngs=nnx.Rngs(0))
  four, m4 = _run_steps(jax.devices(), make, steps=2)
  one, m1 = _run_steps(jax.devices()[:1], make, steps=2)
  assert _max_diff(four.params, one.params) <= 1e-5
  assert _max_diff(four.model_state, one.model_state) <= 1e-5
  assert abs(m4["loss"] - m1["loss"]) <= 1e-5
  initial = jax.device_get(classification.split_model(make())[1])
  assert _max_diff(four.params, initial) > 1e-3  # the steps did move the weights


def test_per_device_batch_norm_differs_from_global():
  make = lambda: TinyCNN(batch_norm=True, rngs=nnx.Rngs(0))
  four, _ = _run_steps(jax.devices(), make)
  one, _ = _run_steps(jax.devices()[:1], make)
  assert _max_diff(four.params, one.params) > 1e-5


def test_step_traces_once_and_drop_path_ramps():
  mesh = parallel.make_mesh()
  tx = optax.adamw(1e-3)
  graphdef, state = classification.create_train_state(TinyCNN(rngs=nnx.Rngs(0)), tx)
  state = parallel.replicate(state, mesh)
  step_fn = classification.make_train_step(graphdef, tx, total_steps=4, learning_rate=lambda s: s,
                                           drop_path_rate=0.2, aux_weight=0.4,
                                           label_smoothing=0.1)
  step = parallel.data_parallel(chex.assert_max_traces(step_fn, n=1), mesh)
  rates, lrs = [], []
  for i in range(4):
    state, metrics = step(state, parallel.to_global(_batch(i), mesh), jax.random.key(1))
    rates.append(float(metrics["drop_path_rate"]))
    lrs.append(float(metrics["learning_rate"]))
  np.testing.assert_allclose(rates, [0.0, 0.05, 0.1, 0.15], atol=1e-7)
  assert lrs == [0.0, 1.0, 2.0, 3.0]
  assert int(state.step) == 4


def test_aux_weight_and_label_smoothing_enter_the_loss():
  _, metrics = _run_steps(jax.devices(), lambda: TinyCNN(rngs=nnx.Rngs(0)), aux_weight=0.4,
                          label_smoothing=0.1)
  model = TinyCNN(rngs=nnx.Rngs(0))
  batch = _batch(0)
  logits, aux = model(jnp.asarray(batch["image"]), return_aux=True)
  ce = lambda z, s: float(classification.cross_entropy(z, batch["label"], s).mean())
  assert ce(logits, 0.1) != pytest.approx(ce(logits, 0.0), abs=1e-3)
  assert float(metrics["loss"]) == pytest.approx(ce(logits, 0.1) + 0.4 * ce(aux, 0.1), abs=1e-5)


def test_bfloat16_compute_tracks_float32():
  make = lambda: TinyCNN(batch_norm=True, rngs=nnx.Rngs(0))
  full, m32 = _run_steps(jax.devices(), make)
  half, m16 = _run_steps(jax.devices(), make, compute_dtype=jnp.bfloat16)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(half.params))  # float32 master copy
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(half.model_state))
  assert float(m16["loss"]) == pytest.approx(float(m32["loss"]), abs=2e-2)
  assert 0 < _max_diff(full.params, half.params) < 1e-2


def test_eval_counts_only_unmasked_examples():
  mesh = parallel.make_mesh()
  tx = optax.sgd(0.1)
  model = TinyCNN(rngs=nnx.Rngs(0))
  graphdef, state = classification.create_train_state(model, tx)
  eval_step = parallel.data_parallel_eval(classification.make_eval_step(graphdef), mesh)
  batch = _batch(3)
  batch["mask"] = np.array([1, 1, 1, 0, 1, 0, 0, 1], np.float32)
  out = trainer.evaluate(eval_step, parallel.replicate(state, mesh),
                         iter([parallel.to_global(batch, mesh)]))
  predictions = np.argmax(np.asarray(model(jnp.asarray(batch["image"]))), -1)
  keep = batch["mask"] > 0
  assert out["examples"] == 5
  assert out["accuracy"] == pytest.approx(np.mean(predictions[keep] == batch["label"][keep]))


def _optimizer_config(**kw) -> ml_collections.ConfigDict:
  base = dict(name="sgd", learning_rate=0.1, momentum=0.9, nesterov=False, weight_decay=0.0,
              grad_clip_norm=0.0, schedule="cosine", warmup_epochs=1.0, end_learning_rate=0.0,
              decay_rate=0.97, decay_epochs=2.0, rmsprop_decay=0.9, rmsprop_epsilon=1.0)
  base.update(kw)
  return ml_collections.ConfigDict(base)


def test_warmup_then_cosine_schedule():
  lr = optim.learning_rate_schedule(_optimizer_config(), total_steps=110, steps_per_epoch=10)
  np.testing.assert_allclose([lr(0), lr(5), lr(10), lr(60), lr(110)],
                             [0.0, 0.05, 0.1, 0.05, 0.0], atol=1e-7)
  exp = optim.learning_rate_schedule(_optimizer_config(schedule="exponential", warmup_epochs=0),
                                     total_steps=100, steps_per_epoch=10)
  np.testing.assert_allclose([exp(19), exp(20), exp(45)], [0.1, 0.097, 0.1 * 0.97 ** 2], rtol=1e-6)


def test_clipping_then_weight_decay_then_sgd():
  tx = optim.make_optimizer(_optimizer_config(momentum=0.0, weight_decay=0.5, grad_clip_norm=1.0,
                                              schedule="constant", warmup_epochs=0),
                            total_steps=10, steps_per_epoch=1)
  params = {"w": jnp.array([2.0, 0.0])}
  updates, _ = tx.update({"w": jnp.array([30.0, 40.0])}, tx.init(params), params)
  # clip to norm 1 -> (0.6, 0.8); + 0.5 * w -> (1.6, 0.8); * -lr
  np.testing.assert_allclose(updates["w"], [-0.16, -0.08], rtol=1e-6)
  with pytest.raises(UserError, match="config.optimizer.name"):
    optim.make_optimizer(_optimizer_config(name="lamb"), total_steps=10, steps_per_epoch=1)


def test_periodic_in_steps_and_epochs():
  assert periodic.parse("200 steps", steps_per_epoch=50).steps == 200
  assert periodic.parse("2 epochs", steps_per_epoch=50).steps == 100
  assert periodic.parse("0.5 epoch", steps_per_epoch=7).steps == 4
  every = periodic.parse("3", steps_per_epoch=1)
  assert [s for s in range(1, 11) if every(s, 10)] == [3, 6, 9, 10]
  assert not any(periodic.parse("0", steps_per_epoch=5)(s, 10) for s in range(1, 11))
  with pytest.raises(UserError, match="config.log_every"):
    periodic.parse("often", steps_per_epoch=5, where="config.log_every")


def test_sigterm_saves_and_stops_then_resume_continues(tmp_path):
  """Any step function over any pytree: the loop is task-agnostic."""
  def step_fn(state, batch, key):
    del key
    if int(state["step"]) == 2:
      os.kill(os.getpid(), signal.SIGTERM)
    return ({"step": state["step"] + 1, "total": state["total"] + batch},
            {"loss": jnp.float32(batch)})

  def run(state, batches):
    checkpoints = checkpointing.Checkpoints(str(tmp_path / "ckpt"), keep=2)
    if checkpoints.latest_step() is not None:
      state = checkpoints.restore_latest(state)
    result = trainer.train_loop(
        state=state, step_fn=step_fn, batches=batches, key=jax.random.key(0), total_steps=6,
        examples_per_step=1, writer=MetricsWriter(str(tmp_path)),
        log_every=periodic.Every(1), checkpoint_every=periodic.Every(100),
        checkpoints=checkpoints, step_of=lambda s: s["step"])
    checkpoints.close()
    return result

  fresh = {"step": jnp.int32(0), "total": jnp.float32(0)}
  first = run(fresh, iter([1.0, 2.0, 4.0, 8.0, 16.0, 32.0]))
  assert first.preempted and int(first.state["step"]) == 3
  assert float(first.state["total"]) == 7.0
  second = run(fresh, iter([8.0, 16.0, 32.0]))
  assert not second.preempted
  assert int(second.state["step"]) == 6 and float(second.state["total"]) == 63.0


def test_init_checkpoint_round_trip_and_mismatch(tmp_path):
  params = {"w": jnp.arange(4.0), "b": jnp.ones(2)}
  checkpointing.save_params(str(tmp_path / "init"), params)
  like = jax.tree.map(jnp.zeros_like, params)
  restored = checkpointing.load_params(str(tmp_path / "init"), like)
  np.testing.assert_array_equal(restored["w"], params["w"])
  with pytest.raises(UserError, match="config.init_checkpoint"):
    checkpointing.load_params(str(tmp_path / "nothing"), like)
