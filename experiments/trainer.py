"""The data-parallel training loop, and `train_and_evaluate` for classification.

`train_loop` drives any step function `step_fn(state, batch, key) -> (state, metrics)`
over a pytree state (classification here, the DARTS bilevel step elsewhere): it
owns periodic logging, evaluation and checkpointing, preemption and the progress
bar, and nothing about the task.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Iterator, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from flax import nnx

from experiments import checkpointing, classification, config_util, model_builder, optim
from experiments import parallel, periodic, step_cache
from experiments.data import pipeline
from experiments.metrics_writer import MetricsWriter
from models.errors import Preempted
from models.networks import anycell


@dataclasses.dataclass
class LoopResult:
  state: Any
  train_metrics: dict[str, float]   # averages over the last logging period
  eval_metrics: dict[str, float]    # the last periodic evaluation, if any
  examples_per_second: float        # after the first (compiling) step
  preempted: bool


def train_loop(*, state: Any, step_fn: Callable, batches: Iterator, key: jax.Array,
               total_steps: int, examples_per_step: int, writer: MetricsWriter,
               log_every: periodic.Every, checkpoint_every: periodic.Every,
               checkpoints: checkpointing.Checkpoints | None = None,
               eval_every: periodic.Every = periodic.Every(0),
               eval_fn: Callable[[Any], Mapping[str, float]] | None = None,
               step_of: Callable[[Any], Any] = lambda s: s.step) -> LoopResult:
  """Runs `step_fn` from the state's step to `total_steps`; a SIGTERM saves and stops."""
  start_step = int(step_of(state))
  pending: list[dict[str, jax.Array]] = []
  train_metrics: dict[str, float] = {}
  eval_metrics: dict[str, float] = {}
  timer_start, timed_steps = None, 0
  bar = tqdm.tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                  disable=jax.process_index() != 0)
  with checkpointing.PreemptionFlag() as preemption:
    for step in range(start_step + 1, total_steps + 1):
      state, metrics = step_fn(state, next(batches), key)
      pending.append(metrics)
      if timer_start is None:
        jax.block_until_ready(metrics)
        timer_start = time.perf_counter()
      else:
        timed_steps += 1
      bar.update(1)
      if log_every(step, total_steps):
        train_metrics = _mean(pending)
        pending = []
        writer.scalars(step, train_metrics, prefix="train/")
        rate = _rate(timed_steps, examples_per_step, timer_start)
        writer.scalars(step, {"examples_per_second": rate})
        bar.set_postfix(loss=f"{train_metrics['loss']:.3f}", ex_per_s=f"{rate:.0f}")
      if eval_fn is not None and eval_every(step, total_steps):
        eval_metrics = dict(eval_fn(state))
        writer.scalars(step, eval_metrics, prefix="eval/")
      if checkpoints is not None and checkpoint_every(step, total_steps):
        checkpoints.save(step, state)
      if preemption.raised:
        if checkpoints is not None:
          checkpoints.save(step, state, force=True)
        break
  bar.close()
  jax.block_until_ready(state)
  if pending:
    train_metrics = _mean(pending)
  return LoopResult(state, train_metrics, eval_metrics,
                    _rate(timed_steps, examples_per_step, timer_start), preemption.raised)


def _mean(metrics: list[dict[str, jax.Array]]) -> dict[str, float]:
  stacked = jax.device_get(metrics)
  return {k: float(np.mean([m[k] for m in stacked])) for k in stacked[0]}


def _rate(steps: int, examples_per_step: int, since: float | None) -> float:
  if not steps or since is None:
    return 0.0
  return steps * examples_per_step / (time.perf_counter() - since)


def evaluate(eval_step: Callable, state: Any, batches: Iterator) -> dict[str, float]:
  """Accuracy and mean loss over one pass of padded, masked eval batches."""
  totals = None
  for batch in batches:
    sums = eval_step(state, batch)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = jax.device_get(totals)
  count = max(float(totals["count"]), 1.0)
  return {"accuracy": float(totals["correct"]) / count, "loss": float(totals["loss"]) / count,
          "examples": int(totals["count"])}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the configured classifier in `workdir` (resuming if it holds a checkpoint)
  and returns the final metrics, also written to `workdir/metrics.json`."""
  workdir = config_util.prepare_workdir(workdir)
  config_util.save_config(config, workdir)
  model_builder.model_spec(config)  # bad genotypes and dtypes fail before data is read
  compute_dtype = config_util.compute_dtype(config.compute_dtype)
  mesh = parallel.make_mesh()
  data = config.data
  builder = pipeline.open_dataset(data.name, data.data_dir)
  train_split, eval_split = pipeline.carve_splits(builder, data.train_split,
                                                  data.validation_fraction, data.eval_split)
  eval_name = ("validation" if data.validation_fraction > 0
               else data.eval_split.split("[")[0])
  preprocess = pipeline.make_preprocess(data.name, data.augment, data.image_size, data.cutout)
  steps_per_epoch = pipeline.steps_per_epoch(builder, train_split, config.batch_size)
  total_steps = max(1, int(round(config.num_epochs * steps_per_epoch)))

  model = model_builder.build_model(config, num_classes=pipeline.num_classes(builder),
                                    image_size=data.image_size, rngs=nnx.Rngs(config.seed))
  tx = optim.make_optimizer(config.optimizer, total_steps=total_steps,
                            steps_per_epoch=steps_per_epoch)
  graphdef, state = classification.create_train_state(model, tx)
  num_params = anycell.child_param_count(model) or int(
      sum(x.size for x in jax.tree.leaves(state.params)))
  del model
  state = parallel.replicate(state, mesh)

  checkpoints = checkpointing.Checkpoints(os.path.join(workdir, "checkpoints"),
                                          keep=config.keep_checkpoints)
  if checkpoints.latest_step() is not None:
    state = checkpoints.restore_latest(state)
  elif config.init_checkpoint:
    state = state.replace(params=checkpointing.load_params(config.init_checkpoint, state.params))
    # Converted weights (`models.zoo.weights convert`) ship BatchNorm statistics beside params.
    batch_stats = os.path.join(os.path.dirname(os.path.abspath(config.init_checkpoint)),
                               "batch_stats")
    if os.path.isdir(batch_stats):
      state = state.replace(model_state=checkpointing.load_params(batch_stats, state.model_state))

  lr = optim.learning_rate_schedule(config.optimizer, total_steps=total_steps,
                                    steps_per_epoch=steps_per_epoch)
  # Everything the steps close over is in their keys: equal keys make equal programs.
  recipe = (graphdef, mesh, config.optimizer.to_json(), total_steps, steps_per_epoch,
            config.label_smoothing, config.aux_weight, config.drop_path_rate,
            config.compute_dtype)
  train_step = step_cache.get(("train", *recipe), lambda: parallel.data_parallel(
      classification.make_train_step(
          graphdef, tx, total_steps=total_steps, learning_rate=lr,
          label_smoothing=config.label_smoothing, aux_weight=config.aux_weight,
          drop_path_rate=config.drop_path_rate, compute_dtype=compute_dtype), mesh))
  eval_step = step_cache.get(("eval", graphdef, mesh, config.compute_dtype), lambda: (
      parallel.data_parallel_eval(classification.make_eval_step(graphdef, compute_dtype), mesh)))

  def run_eval(s):
    batches = pipeline.eval_batches(builder, eval_split, global_batch_size=config.eval_batch_size,
                                    preprocess=preprocess)
    return evaluate(eval_step, s, parallel.prefetch_to_mesh(batches, mesh))

  train_batches = pipeline.train_batches(
      builder, train_split, global_batch_size=config.batch_size, preprocess=preprocess,
      seed=config.seed, start_step=int(state.step), shuffle_buffer=data.shuffle_buffer)
  def every(text: str, key: str) -> periodic.Every:
    return periodic.parse(text, steps_per_epoch=steps_per_epoch, where=f"config.{key}")

  writer = MetricsWriter(workdir)
  started = time.perf_counter()
  result = train_loop(
      state=state, step_fn=train_step, batches=parallel.prefetch_to_mesh(train_batches, mesh),
      key=jax.random.key(config.seed), total_steps=total_steps,
      examples_per_step=config.batch_size, writer=writer,
      log_every=every(config.log_every, "log_every"),
      checkpoint_every=every(config.checkpoint_every, "checkpoint_every"),
      checkpoints=checkpoints, eval_every=every(config.eval_every, "eval_every"),
      eval_fn=run_eval)
  checkpoints.close()
  if result.preempted:
    writer.close()
    raise Preempted(f"training stopped at step {int(result.state.step)} (SIGTERM); "
                    f"its checkpoint is in {workdir}")

  final = run_eval(result.state)
  metrics = {
      f"{eval_name}_accuracy": final["accuracy"],
      f"{eval_name}_loss": final["loss"],
      f"{eval_name}_examples": final["examples"],
      "train_loss": result.train_metrics.get("loss", float("nan")),
      "train_accuracy": result.train_metrics.get("accuracy", float("nan")),
      "steps": int(result.state.step),
      "epochs": float(result.state.step) / steps_per_epoch,
      "examples_per_second": result.examples_per_second,
      "wall_time_s": time.perf_counter() - started,
      "num_params": num_params,
      "devices": jax.device_count(),
  }
  writer.scalars(metrics["steps"], {k: v for k, v in metrics.items()
                                    if k.startswith(eval_name)}, prefix="final/")
  writer.final(metrics)
  writer.close()
  return metrics
