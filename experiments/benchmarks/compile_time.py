"""XLA compile seconds per search child: cold, scanned cells, persistent cache, and
children whose cell is data (`--genotype_as_input`, one program for every child).

Each measurement runs in a fresh worker process (so nothing is cached in memory):

    python -m experiments.benchmarks.compile_time --children=10 --layers=5 --filters=8 \
        [--scan_cells] [--cache_dir=DIR]

prints one JSON object: per child (a random NASNet-space cell in the `cifar`
skeleton), the seconds to trace and compile the train step and the eval step, and
the median time of a train step;
the same work `experiments.proxy_evaluator` pays before a child's first step.
`measure_variants` runs the workers for the benchmark suite: cold, cold with
`scan_cells`, and twice on one persistent cache directory (filling, then warm).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np


def compile_children(children: int, layers: int, filters: int, batch_size: int,
                     scan_cells: bool, seed: int = 0) -> list[dict]:
  from flax import nnx
  from experiments.benchmarks import jax_train_step
  from experiments.benchmarks.timing import time_steps
  from models.zoo import catalog as zoo
  from nas.spaces import get_search_space
  space = get_search_space("nasnet", num_blocks=5)
  rng = np.random.default_rng(seed)
  batch = jax_train_step.random_batch(batch_size, 32, 10)
  rows = []
  for i in range(children):
    genotype = space.sample(rng)
    overrides = {"scan_cells": True} if scan_cells else {}
    model = zoo.build_model("cifar", genotype=genotype, num_classes=10, image_size=32,
                            rngs=nnx.Rngs(0), layers=layers, filters=filters, **overrides)
    compiled = jax_train_step.compile_train_step(model, batch, with_eval=True)
    step_s = time_steps(compiled.run, steps=3, warmup=1)["median_s"]
    rows.append({"child": i, "num_params": compiled.num_params, "step_s": round(step_s, 3),
                 "train_trace_s": round(compiled.trace_s, 3),
                 "train_compile_s": round(compiled.compile_s, 3),
                 "eval_compile_s": round(compiled.eval_compile_s, 3),
                 "total_s": round(compiled.trace_s + compiled.compile_s
                                  + compiled.eval_compile_s, 3)})
  return rows


def anycell_children(children: int, layers: int, filters: int, batch_size: int,
                     seed: int = 0) -> list[dict]:
  """The same children as `genotype_as_input` networks (`models.networks.anycell`), in one process.

  Each child goes the trainer's way: its network is built and its state placed, then the
  train and eval steps are fetched from `experiments.step_cache` and called. A child's
  compile seconds are its first call's time less a steady call's: the first child
  traces and compiles the program, the others find it compiled.
  """
  import jax
  from flax import nnx
  from experiments import classification, parallel, step_cache
  from experiments.benchmarks import jax_train_step
  from experiments.benchmarks.timing import Stopwatch, time_steps
  from models.networks import anycell
  from models import spaces
  from models.zoo import catalog as zoo
  from nas.spaces import get_search_space
  space = get_search_space("nasnet", num_blocks=5)
  rules = spaces.get_space("nasnet")
  rng = np.random.default_rng(seed)
  mesh = parallel.make_mesh()
  host_batch = jax_train_step.random_batch(batch_size, 32, 10)
  batch = parallel.to_global(host_batch, mesh)
  eval_batch = parallel.to_global(
      dict(host_batch, mask=np.ones(batch_size, np.float32)), mesh)
  config = zoo.model_config("cifar", num_classes=10, image_size=32, layers=layers,
                            filters=filters, aux_head=False)
  key = jax.random.key(0)
  rows = []
  for i in range(children):
    genotype = space.sample(rng)
    with Stopwatch() as build:
      model = anycell.build(genotype, config, rules.ops, concat_combine=True, rngs=nnx.Rngs(0))
      tx = jax_train_step.benchmark_optimizer()
      graphdef, state = classification.create_train_state(model, tx)
      state = parallel.replicate(state, mesh)
    train_step = step_cache.get(("train", graphdef), lambda: parallel.data_parallel(
        classification.make_train_step(graphdef, tx, total_steps=1,
                                       learning_rate=lambda step: 0.01), mesh))
    eval_step = step_cache.get(("eval", graphdef), lambda: parallel.data_parallel_eval(
        classification.make_eval_step(graphdef), mesh))
    holder = {"state": state}

    def run():
      holder["state"], metrics = train_step(holder["state"], batch, key)
      jax.block_until_ready(metrics)

    with Stopwatch() as first:
      run()
    with Stopwatch() as first_eval:
      jax.block_until_ready(eval_step(holder["state"], eval_batch))
    with Stopwatch() as eval_again:
      jax.block_until_ready(eval_step(holder["state"], eval_batch))
    step_s = time_steps(run, steps=3, warmup=0)["median_s"]
    train_compile = max(first.seconds - step_s, 0.0)
    eval_compile = max(first_eval.seconds - eval_again.seconds, 0.0)
    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    rows.append({"child": i, "num_params": int(num_params),
                 "child_params": anycell.child_param_count(model), "step_s": round(step_s, 3),
                 "build_s": round(build.seconds, 3),
                 "train_compile_s": round(train_compile, 3),
                 "eval_compile_s": round(eval_compile, 3),
                 "total_s": round(train_compile + eval_compile, 3)})
  return rows


def run_worker(*, children: int, layers: int, filters: int, batch_size: int, scan_cells: bool,
               cache_dir: str | None, genotype_as_input: bool = False) -> list[dict]:
  """Runs `compile_children` (or `anycell_children`) in a fresh process; returns its rows."""
  command = [sys.executable, "-m", "experiments.benchmarks.compile_time",
             f"--children={children}", f"--layers={layers}", f"--filters={filters}",
             f"--batch_size={batch_size}"]
  if scan_cells:
    command.append("--scan_cells")
  if genotype_as_input:
    command.append("--genotype_as_input")
  if cache_dir:
    command.append(f"--cache_dir={cache_dir}")
  out = subprocess.run(command, check=True, capture_output=True, text=True)
  return json.loads(out.stdout.strip().splitlines()[-1])["children"]


def summarize(rows: list[dict]) -> dict:
  return {"median_total_s": round(statistics.median(r["total_s"] for r in rows), 2),
          "first_child_total_s": rows[0]["total_s"],
          "median_train_compile_s": round(statistics.median(r["train_compile_s"] for r in rows), 2),
          "children": rows}


def measure_variants(*, children: int, layers: int, filters: int, batch_size: int,
                     variants: tuple[str, ...] = ("cold", "scan", "cache")) -> dict[str, dict]:
  """{variant: summary}; "cache" adds "cache_fill" (first run) and "cache_warm";
  "genotype_as_input" runs every child in one process on one `models.networks.anycell` program."""
  common = dict(children=children, layers=layers, filters=filters, batch_size=batch_size)
  results = {}
  if "genotype_as_input" in variants:
    results["genotype_as_input"] = summarize(run_worker(scan_cells=False, cache_dir=None,
                                                        genotype_as_input=True, **common))
  if "cold" in variants:
    results["cold"] = summarize(run_worker(scan_cells=False, cache_dir=None, **common))
  if "scan" in variants:
    results["scan"] = summarize(run_worker(scan_cells=True, cache_dir=None, **common))
  if "cache" in variants:
    with tempfile.TemporaryDirectory() as cache_dir:
      results["cache_fill"] = summarize(run_worker(scan_cells=False, cache_dir=cache_dir, **common))
      results["cache_warm"] = summarize(run_worker(scan_cells=False, cache_dir=cache_dir, **common))
  return results


def enable_persistent_cache(cache_dir: str) -> None:
  import jax
  jax.config.update("jax_compilation_cache_dir", cache_dir)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--children", type=int, default=10)
  parser.add_argument("--layers", type=int, default=5)
  parser.add_argument("--filters", type=int, default=8)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--scan_cells", action="store_true")
  parser.add_argument("--cache_dir", default="")
  parser.add_argument("--genotype_as_input", action="store_true")
  args = parser.parse_args()
  from experiments.config_util import use_default_prng
  use_default_prng()
  if args.cache_dir:
    os.makedirs(args.cache_dir, exist_ok=True)
    enable_persistent_cache(args.cache_dir)
  if args.genotype_as_input:
    rows = anycell_children(args.children, args.layers, args.filters, args.batch_size)
  else:
    rows = compile_children(args.children, args.layers, args.filters, args.batch_size,
                            args.scan_cells)
  print(json.dumps({"children": rows}))


if __name__ == "__main__":
  main()
