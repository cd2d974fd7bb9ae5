"""A JAX classification train step for benchmarking: the trainer's step on one batch.

The step is the one `experiments.trainer` runs (`classification.make_train_step`
under `parallel.data_parallel`), with plain SGD + momentum 0.9, no drop path and no
auxiliary loss, so a PyTorch reference can do exactly the same work.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx

from experiments import classification, parallel
from experiments.benchmarks.timing import Stopwatch
from models import ops


@dataclasses.dataclass
class CompiledStep:
  step: Any              # the compiled train step
  state: Any             # replicated TrainState
  batch: dict[str, jax.Array]
  num_params: int
  trace_s: float
  compile_s: float
  eval_step: Any = None  # compiled eval step, when asked for
  eval_batch: dict[str, jax.Array] | None = None
  eval_compile_s: float = 0.0

  def run(self) -> None:
    self.state, metrics = self.step(self.state, self.batch, jax.random.key(0))
    jax.block_until_ready(metrics)


def benchmark_optimizer() -> optax.GradientTransformation:
  return optax.sgd(0.01, momentum=0.9)


def random_batch(batch_size: int, image_size: int, num_classes: int, seed: int = 0
                 ) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {"image": rng.normal(size=(batch_size, image_size, image_size, 3)).astype(np.float32),
          "label": rng.integers(0, num_classes, batch_size).astype(np.int32)}


def compile_train_step(model: nnx.Module, batch: dict[str, np.ndarray], *,
                       depthwise: str | None = None, with_eval: bool = False,
                       mesh=None) -> CompiledStep:
  """Lowers and compiles the train step (and optionally the eval step) of `model`.

  `depthwise` forces the depthwise-conv implementation ("lax" or "shifted"; None:
  the backend's choice), as `ops.depthwise_impl` does while tracing.
  """
  mesh = mesh or parallel.make_mesh()
  tx = benchmark_optimizer()
  graphdef, state = classification.create_train_state(model, tx)
  num_params = int(sum(x.size for x in jax.tree.leaves(state.params)))
  state = parallel.replicate(state, mesh)
  train_step = parallel.data_parallel(classification.make_train_step(
      graphdef, tx, total_steps=1, learning_rate=lambda step: 0.01), mesh)
  global_batch = parallel.to_global(batch, mesh)
  key = jax.random.key(0)
  with ops.depthwise_impl(depthwise):
    with Stopwatch() as trace:
      lowered = train_step.lower(state, global_batch, key)
    with Stopwatch() as compile_:
      compiled = lowered.compile()
    out = CompiledStep(compiled, state, global_batch, num_params, trace.seconds, compile_.seconds)
    if with_eval:
      eval_step = parallel.data_parallel_eval(classification.make_eval_step(graphdef), mesh)
      eval_batch = dict(batch, mask=np.ones(len(batch["label"]), np.float32))
      out.eval_batch = parallel.to_global(eval_batch, mesh)
      with Stopwatch() as eval_compile:
        out.eval_step = eval_step.lower(state, out.eval_batch).compile()
      out.eval_compile_s = eval_compile.seconds
  return out
