"""XLA compile seconds per search child: cold, scanned cells, persistent cache.

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
  from models import zoo
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


def run_worker(*, children: int, layers: int, filters: int, batch_size: int, scan_cells: bool,
               cache_dir: str | None) -> list[dict]:
  """Runs `compile_children` in a fresh process and returns its rows."""
  command = [sys.executable, "-m", "experiments.benchmarks.compile_time",
             f"--children={children}", f"--layers={layers}", f"--filters={filters}",
             f"--batch_size={batch_size}"]
  if scan_cells:
    command.append("--scan_cells")
  if cache_dir:
    command.append(f"--cache_dir={cache_dir}")
  out = subprocess.run(command, check=True, capture_output=True, text=True)
  return json.loads(out.stdout.strip().splitlines()[-1])["children"]


def summarize(rows: list[dict]) -> dict:
  return {"median_total_s": round(statistics.median(r["total_s"] for r in rows), 2),
          "median_train_compile_s": round(statistics.median(r["train_compile_s"] for r in rows), 2),
          "children": rows}


def measure_variants(*, children: int, layers: int, filters: int, batch_size: int,
                     variants: tuple[str, ...] = ("cold", "scan", "cache")) -> dict[str, dict]:
  """{variant: summary}; "cache" adds "cache_fill" (first run) and "cache_warm"."""
  common = dict(children=children, layers=layers, filters=filters, batch_size=batch_size)
  results = {}
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
  args = parser.parse_args()
  from experiments.config_util import use_default_prng
  use_default_prng()
  if args.cache_dir:
    os.makedirs(args.cache_dir, exist_ok=True)
    enable_persistent_cache(args.cache_dir)
  rows = compile_children(args.children, args.layers, args.filters, args.batch_size,
                          args.scan_cells)
  print(json.dumps({"children": rows}))


if __name__ == "__main__":
  main()
