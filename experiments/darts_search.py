"""The DARTS search run: bilevel steps on the data-parallel trainer loop.

The training half of `train` trains the weights, the other half trains α. Every
epoch writes the derived genotype (`genotypes/epoch_NNN.json`), its cell diagrams
(`diagrams/`), a heatmap of softmax(α) (`alpha/epoch_NNN.png`) and TensorBoard
scalars; checkpoints hold weights, α, BN statistics and both optimizer states, so
a killed search resumes where it stopped. The result is `genotype.json`, which
`python -m experiments.train --config.genotype=WORKDIR/genotype.json` trains.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax import lax

from experiments import checkpointing, classification, config_util, parallel, periodic
from experiments.data import pipeline
from experiments.metrics_writer import MetricsWriter
from experiments.parallel import DATA_AXIS
from experiments.trainer import train_loop
from models.genotypes import genotype as genotype_lib
from models.genotypes import files as genotype_files
from models import ops as ops_lib
from models.networks import supernet
from models.errors import Preempted, UserError
from nas.darts import bilevel, derive


@flax.struct.dataclass
class SearchState:
  step: jax.Array
  weights: Any            # nnx.State of nnx.Param
  alpha: Any              # nnx.State of supernet.ArchParam
  model_state: Any        # BatchNorm statistics
  weights_opt_state: Any
  alpha_opt_state: Any


def build_supernet(model: ml_collections.ConfigDict, num_classes: int,
                   rngs: nnx.Rngs) -> supernet.SearchNetwork:
  if model.space not in supernet.GENOTYPE_SPACE:
    raise UserError(f"config.model.space: no supernet for {model.space!r} "
                    f"(known: {', '.join(supernet.GENOTYPE_SPACE)})")
  return supernet.SearchNetwork(
      num_classes=num_classes, space=model.space, layers=model.layers,
      channels=model.channels, steps=model.steps, multiplier=model.multiplier,
      stem_multiplier=model.stem_multiplier,
      bn_axis_name=DATA_AXIS if model.cross_replica_bn else None, rngs=rngs,
      init_scale=model.alpha_init_scale)


def weights_lr_schedule(optim: ml_collections.ConfigDict, *, epochs: int,
                        steps_per_epoch: int) -> optax.Schedule:
  """Cosine from `lr` to `lr_min` over epochs, constant within an epoch (as in DARTS)."""
  def schedule(step):
    epoch = jnp.minimum(step // steps_per_epoch, epochs)
    return optim.lr_min + 0.5 * (optim.lr - optim.lr_min) * (1 + jnp.cos(jnp.pi * epoch / epochs))
  return schedule


def weights_optimizer(optim: ml_collections.ConfigDict,
                      lr: optax.Schedule) -> optax.GradientTransformation:
  """Clip, L2 decay added to the gradient, SGD with momentum (PyTorch SGD semantics)."""
  return optax.chain(optax.clip_by_global_norm(optim.grad_clip),
                     optax.add_decayed_weights(optim.weight_decay),
                     optax.sgd(lr, momentum=optim.momentum))


def alpha_optimizer(arch: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam with L2 decay added to the gradient (PyTorch Adam's `weight_decay`)."""
  return optax.chain(optax.add_decayed_weights(arch.weight_decay),
                     optax.adam(arch.lr, b1=arch.b1, b2=arch.b2))


def create_search_state(model: supernet.SearchNetwork, weights_tx, alpha_tx):
  graphdef, weights, alpha, model_state = supernet.split(model)
  return graphdef, SearchState(
      step=jnp.zeros((), jnp.int32), weights=weights, alpha=alpha, model_state=model_state,
      weights_opt_state=weights_tx.init(weights), alpha_opt_state=alpha_tx.init(alpha))


def make_loss_fn(graphdef: nnx.GraphDef, depthwise: str | None = None) -> bilevel.LossFn:
  """Cross entropy of the supernet in training mode; aux = (new BN state, metrics).

  `depthwise` forces the depthwise-conv implementation (None: the backend's default).
  """
  def loss_fn(weights, alpha, model_state, batch):
    images, labels = batch
    model = nnx.merge(graphdef, weights, alpha, model_state, copy=True)
    with ops_lib.depthwise_impl(depthwise):
      logits = model(images, train=True)
    loss = classification.cross_entropy(logits, labels).mean()
    new_model_state = supernet.split(model)[3]
    return loss, (new_model_state, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)})
  return loss_fn


def make_search_step(graphdef: nnx.GraphDef, weights_tx, alpha_tx, lr: optax.Schedule, *,
                     order: int, hvp: str, momentum: float, weight_decay: float,
                     depthwise: str | None = None) -> Callable:
  """`step(state, batch, key) -> (state, metrics)` for `parallel.data_parallel`; the
  batch holds the weights' examples (`image`, `label`) and α's (`arch_image`, ...)."""
  loss_fn = make_loss_fn(graphdef, depthwise)

  def step(state: SearchState, batch: dict[str, jax.Array], key: jax.Array):
    del key  # the search step is deterministic
    xi = lr(state.step)
    weights, alpha, model_state, weights_opt_state, alpha_opt_state, metrics = (
        bilevel.search_step(
            loss_fn, state.weights, state.alpha, state.model_state, state.weights_opt_state,
            state.alpha_opt_state, (batch["image"], batch["label"]),
            (batch["arch_image"], batch["arch_label"]), w_tx=weights_tx, alpha_tx=alpha_tx,
            xi=xi, order=order, hvp=hvp, momentum=momentum, weight_decay=weight_decay,
            axis_name=DATA_AXIS))
    model_state = jax.tree.map(lambda new, old: new.astype(old.dtype),
                               lax.pmean(model_state, DATA_AXIS), state.model_state)
    metrics = {"loss": metrics["train_loss"], "accuracy": metrics["accuracy"],
               "arch_loss": metrics["val_loss"], "learning_rate": xi}
    return state.replace(step=state.step + 1, weights=weights, alpha=alpha,
                         model_state=model_state, weights_opt_state=weights_opt_state,
                         alpha_opt_state=alpha_opt_state), metrics

  return step


def alpha_arrays(alpha) -> tuple[np.ndarray, np.ndarray]:
  alpha = jax.device_get(alpha)
  return np.asarray(alpha["alpha_normal"][...]), np.asarray(alpha["alpha_reduce"][...])


def derive_genotype(alpha, space: str, steps: int) -> genotype_lib.Genotype:
  from models import spaces
  normal, reduce = alpha_arrays(alpha)
  return derive.derive(normal, reduce, spaces.get_space(space).ops, steps,
                       space=supernet.GENOTYPE_SPACE[space])


def plot_alpha(alpha, op_names, steps: int, path: str, title: str = "") -> None:
  """A heatmap of softmax(α): one row per edge (`i→j`), one column per op, per cell type."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  labels = [f"{i}→{k + 2}" for k in range(steps) for i in range(k + 2)]
  fig, axes = plt.subplots(1, 2, figsize=(2 + 1.1 * len(op_names), 0.35 * len(labels) + 2),
                           constrained_layout=True)
  for ax, name, a in zip(axes, ("normal", "reduce"), alpha_arrays(alpha)):
    image = ax.imshow(derive.softmax(a), cmap="viridis", vmin=0.0, aspect="auto")
    ax.set_xticks(range(len(op_names)), op_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_title(f"{name} cell {title}".strip())
    fig.colorbar(image, ax=ax, shrink=0.6)
  fig.savefig(path, dpi=90)
  plt.close(fig)


def write_epoch_artifacts(workdir: str, epoch: int, alpha, space: str,
                          steps: int) -> genotype_lib.Genotype:
  """genotypes/epoch_NNN.json, diagrams/epoch_NNN_{normal,reduce}.png and alpha/epoch_NNN.png."""
  from models.analysis import diagram
  from models import spaces
  g = derive_genotype(alpha, space, steps)
  if jax.process_index() == 0:
    name = f"epoch_{epoch:03d}"
    for sub in ("genotypes", "diagrams", "alpha"):
      os.makedirs(os.path.join(workdir, sub), exist_ok=True)
    genotype_files.save(g, os.path.join(workdir, "genotypes", f"{name}.json"))
    diagram.draw_genotype(g, os.path.join(workdir, "diagrams", name), formats=("png",))
    plot_alpha(alpha, spaces.get_space(space).ops, steps,
               os.path.join(workdir, "alpha", f"{name}.png"), title=f"(epoch {epoch})")
  return g


def alpha_entropy(alpha) -> dict[str, float]:
  """Mean entropy of softmax(α) per edge: falls from log(#ops) as the search commits."""
  out = {}
  for name, a in zip(("normal", "reduce"), alpha_arrays(alpha)):
    p = derive.softmax(a)
    out[f"alpha_entropy_{name}"] = float(np.mean(-np.sum(p * np.log(p), axis=-1)))
  return out


def _check(config: ml_collections.ConfigDict) -> None:
  if config.arch.order not in (1, 2):
    raise UserError(f"config.arch.order: expected 1 or 2, got {config.arch.order}")
  if config.arch.hvp not in bilevel.HVP_MODES:
    raise UserError(f"config.arch.hvp: unknown {config.arch.hvp!r} "
                    f"(known: {', '.join(bilevel.HVP_MODES)})")
  if not 0.0 < config.data.arch_fraction < 1.0:
    raise UserError(f"config.data.arch_fraction: {config.data.arch_fraction} not in (0, 1)")
  if not 1 <= config.model.multiplier <= config.model.steps:
    raise UserError(f"config.model.multiplier: {config.model.multiplier} must be in "
                    f"1..config.model.steps ({config.model.steps})")
  if config.epochs < 1:
    raise UserError(f"config.epochs: must be >= 1, got {config.epochs}")


def search_splits(builder, data: ml_collections.ConfigDict) -> tuple[str, str]:
  """(weights split, α split): the head and the tail of the first `num_examples` of train."""
  total = pipeline.split_size(builder, "train")
  n = total if data.num_examples <= 0 else data.num_examples
  if n > total:
    raise UserError(f"config.data.num_examples: {n}, but {data.name!r} has {total} "
                    "training examples")
  n_weights = n - int(round(n * data.arch_fraction))
  return f"train[:{n_weights}]", f"train[{n_weights}:{n}]"


def _paired(weight_batches, arch_batches):
  for w, a in zip(weight_batches, arch_batches):
    yield {"image": w["image"], "label": w["label"],
           "arch_image": a["image"], "arch_label": a["label"]}


def run_darts_search(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs (or resumes) the search in `workdir`; returns the final metrics."""
  _check(config)
  workdir = config_util.prepare_workdir(workdir)
  config_util.save_config(config, workdir)
  mesh = parallel.make_mesh()
  data = config.data
  builder = pipeline.open_dataset(data.name, data.data_dir)
  weights_split, arch_split = search_splits(builder, data)
  preprocess = pipeline.make_preprocess(data.name, data.augment, data.image_size, data.cutout)
  steps_per_epoch = min(pipeline.steps_per_epoch(builder, s, config.batch_size)
                        for s in (weights_split, arch_split))
  total_steps = config.epochs * steps_per_epoch

  model = build_supernet(config.model, pipeline.num_classes(builder), nnx.Rngs(config.seed))
  lr = weights_lr_schedule(config.optim, epochs=config.epochs, steps_per_epoch=steps_per_epoch)
  weights_tx, alpha_tx = weights_optimizer(config.optim, lr), alpha_optimizer(config.arch)
  graphdef, state = create_search_state(model, weights_tx, alpha_tx)
  del model
  state = parallel.replicate(state, mesh)
  checkpoints = checkpointing.Checkpoints(os.path.join(workdir, "checkpoints"), keep=2)
  if checkpoints.latest_step() is not None:
    state = checkpoints.restore_latest(state)

  step_fn = parallel.data_parallel(make_search_step(
      graphdef, weights_tx, alpha_tx, lr, order=config.arch.order, hvp=config.arch.hvp,
      momentum=config.optim.momentum, weight_decay=config.optim.weight_decay,
      depthwise=config.model.depthwise or None), mesh)
  start = int(state.step)
  streams = [pipeline.train_batches(builder, split, global_batch_size=config.batch_size,
                                    preprocess=preprocess, seed=config.seed + offset,
                                    start_step=start, shuffle_buffer=data.shuffle_buffer)
             for offset, split in enumerate((weights_split, arch_split))]
  batches = parallel.prefetch_to_mesh(_paired(*streams), mesh)

  def per_epoch(s: SearchState) -> dict[str, float]:
    epoch = -(-int(s.step) // steps_per_epoch)
    write_epoch_artifacts(workdir, epoch, s.alpha, config.model.space, config.model.steps)
    return alpha_entropy(s.alpha)

  every = lambda text, key: periodic.parse(text, steps_per_epoch=steps_per_epoch,
                                           where=f"config.{key}")
  writer = MetricsWriter(workdir)
  started = time.perf_counter()
  result = train_loop(
      state=state, step_fn=step_fn, batches=batches, key=jax.random.key(config.seed),
      total_steps=total_steps, examples_per_step=config.batch_size, writer=writer,
      log_every=every(config.log_every, "log_every"),
      checkpoint_every=every(config.checkpoint_every, "checkpoint_every"),
      checkpoints=checkpoints, eval_every=periodic.Every(steps_per_epoch), eval_fn=per_epoch)
  checkpoints.close()
  if result.preempted:
    writer.close()
    raise Preempted(f"DARTS search stopped at step {int(result.state.step)} (SIGTERM); "
                    f"its checkpoint is in {workdir}")

  g = derive_genotype(result.state.alpha, config.model.space, config.model.steps)
  if jax.process_index() == 0:
    genotype_files.save(g, os.path.join(workdir, "genotype.json"))
  metrics = {
      "genotype_hash": genotype_lib.genotype_hash(g),
      "steps": int(result.state.step),
      "epochs": config.epochs,
      "train_loss": result.train_metrics.get("loss", float("nan")),
      "train_accuracy": result.train_metrics.get("accuracy", float("nan")),
      "arch_loss": result.train_metrics.get("arch_loss", float("nan")),
      "examples_per_second": result.examples_per_second,
      "wall_time_s": time.perf_counter() - started,
      "devices": jax.device_count(),
      **alpha_entropy(result.state.alpha),
  }
  writer.final(metrics)
  writer.close()
  return metrics
