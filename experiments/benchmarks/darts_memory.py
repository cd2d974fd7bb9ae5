"""Peak memory of one DARTS search step (default: the paper's second-order step).

    python -m experiments.benchmarks.darts_memory --out=darts_memory.json [--order=1] \
        [--batch=64] [--image=32] [--layers=8] [--channels=16]

Writes XLA's compiled memory analysis of the jitted step (arguments, outputs,
temporaries; `xla_peak_mib` = their sum less aliased buffers: what one step needs at
its peak), the compile and median step times, and the process's peak RSS.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import jax
import numpy as np
from flax import nnx

from experiments import darts_search, parallel
from experiments.benchmarks.timing import time_steps
from experiments.configs import darts_cifar10


def measure(order: int, batch: int, image: int, layers: int, channels: int,
            steps: int = 1) -> dict:
  config = darts_cifar10.get_config("paper")
  mesh = parallel.make_mesh(jax.devices()[:1])
  with config.unlocked():
    config.model.layers, config.model.channels = layers, channels
  model = darts_search.build_supernet(config.model, 10, nnx.Rngs(0))
  lr = darts_search.weights_lr_schedule(config.optim, epochs=config.epochs, steps_per_epoch=1)
  weights_tx = darts_search.weights_optimizer(config.optim, lr)
  alpha_tx = darts_search.alpha_optimizer(config.arch)
  graphdef, state = darts_search.create_search_state(model, weights_tx, alpha_tx)
  step = parallel.data_parallel(darts_search.make_search_step(
      graphdef, weights_tx, alpha_tx, lr, order=order, hvp=config.arch.hvp,
      momentum=config.optim.momentum, weight_decay=config.optim.weight_decay,
      depthwise=config.model.depthwise or None), mesh, donate_state=False)
  r = np.random.default_rng(0)
  images = lambda: r.normal(size=(batch, image, image, 3)).astype(np.float32)
  labels = lambda: r.integers(0, 10, batch).astype(np.int32)
  batch_arrays = parallel.to_global({"image": images(), "label": labels(),
                                     "arch_image": images(), "arch_label": labels()}, mesh)
  state = parallel.replicate(state, mesh)
  key = jax.random.key(0)
  started = time.perf_counter()
  compiled = step.lower(state, batch_arrays, key).compile()
  compile_s = time.perf_counter() - started
  analysis = compiled.memory_analysis()
  timed = time_steps(lambda: compiled(state, batch_arrays, key), steps=steps, warmup=1,
                     block=jax.block_until_ready)
  mib = lambda b: round(b / 2 ** 20, 1)
  fields = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
            "generated_code_size_in_bytes", "alias_size_in_bytes")
  out = {f"xla_{f.replace('_in_bytes', '')}_mib": mib(getattr(analysis, f)) for f in fields
         if analysis is not None and hasattr(analysis, f)}
  if analysis is not None:
    out["xla_peak_mib"] = mib(analysis.argument_size_in_bytes + analysis.output_size_in_bytes
                              + analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)
  out.update(order=order, batch=batch, image=image, layers=layers, channels=channels,
             backend=jax.default_backend(), compile_s=round(compile_s, 1),
             step_s=round(timed["median_s"], 3), step_times_s=timed["times_s"],
             num_weights=int(sum(x.size for x in jax.tree.leaves(state.weights))),
             peak_rss_mib=mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="darts_memory.json")
  parser.add_argument("--order", type=int, default=2)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--image", type=int, default=32)
  parser.add_argument("--layers", type=int, default=8)
  parser.add_argument("--channels", type=int, default=16)
  parser.add_argument("--steps", type=int, default=1)
  args = parser.parse_args()
  result = measure(args.order, args.batch, args.image, args.layers, args.channels, args.steps)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
