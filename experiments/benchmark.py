"""Performance benchmark: train steps against PyTorch, compile time per child, DARTS step.

    python -m experiments.benchmark --out=benchmark.json [--suite=all|train_step|compile|darts]
        [--quick]

Prints a table and writes every measurement to `--out` (JSON). PyTorch runs in the
same process for the reference columns (`pip install -r requirements-reference.txt`);
without it those columns are empty. Times are medians over `--steps` steps after a
warm-up step; compile times exclude that step. `--quick` shrinks every network (a
smoke run of the whole benchmark; its numbers are not the reported ones).
"""
from __future__ import annotations

import json
import os
import platform
from typing import Any, Callable

import jax
from absl import flags

from experiments import config_util, cpu_defaults
from experiments.benchmarks import suites
from models.errors import UserError

SUITES: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "train_step": suites.train_step,
    "compile": suites.compile_time,
    "darts": suites.darts_step,
}

_SUITE = flags.DEFINE_string("suite", "all", f"all or a comma list of {', '.join(SUITES)}")
_OUT = flags.DEFINE_string("out", "benchmark.json", "JSON file to write")
_STEPS = flags.DEFINE_integer("steps", 5, "timed steps per measurement")
_CHILDREN = flags.DEFINE_integer("children", 10, "random children in the compile suite")
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", 0, "PyTorch intra-op threads (0: one per CPU core, as XLA:CPU uses)")
_DARTS_LAYERS = flags.DEFINE_integer(
    "darts_layers", 8, "cells of the DARTS search network (the paper: 8)")
_DARTS_ORDERS = flags.DEFINE_list("darts_orders", ["1", "2"], "DARTS step orders to time")
_QUICK = flags.DEFINE_bool("quick", False, "tiny networks: a smoke run, not a measurement")


def machine() -> dict[str, Any]:
  info = {"platform": platform.platform(), "python": platform.python_version(),
          "cpu_count": os.cpu_count(), "jax": jax.__version__,
          "jax_backend": jax.default_backend(), "jax_devices": jax.device_count(),
          "cpu_defaults": cpu_defaults.apply()}
  torch = suites.torch_or_none()
  if torch is not None:
    info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
  return info


def format_table(rows: list[dict[str, Any]]) -> str:
  columns = ["suite", "name", "jax_s", "torch_s", "jax/torch", "detail"]
  def cell(row, column):
    value = row.get(column, "")
    return f"{value:.3f}" if isinstance(value, float) else str(value)
  table = [columns] + [[cell(r, c) for c in columns] for r in rows]
  widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
  return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in table)


def main(argv: list[str]) -> None:
  del argv
  names = list(SUITES) if _SUITE.value == "all" else _SUITE.value.split(",")
  unknown = [n for n in names if n not in SUITES]
  if unknown:
    raise UserError(f"--suite: unknown suite {unknown[0]!r} (known: all, {', '.join(SUITES)})")
  out_dir = os.path.dirname(os.path.abspath(_OUT.value))
  if not os.path.isdir(out_dir):
    raise UserError(f"--out: no directory {out_dir!r}")
  torch = suites.torch_or_none()
  if torch is not None:
    torch.set_num_threads(_TORCH_THREADS.value or os.cpu_count())
  result = {"machine": machine(), "quick": _QUICK.value, "suites": {}}
  rows = []
  for name in names:
    suite_rows = SUITES[name](steps=_STEPS.value, children=_CHILDREN.value, quick=_QUICK.value,
                              darts_layers=_DARTS_LAYERS.value,
                              darts_orders=[int(o) for o in _DARTS_ORDERS.value])
    result["suites"][name] = suite_rows
    rows += [dict(r, suite=name) for r in suite_rows]
    with open(_OUT.value + ".tmp", "w") as f:  # partial results survive a later failure
      json.dump(result, f, indent=2)
    os.replace(_OUT.value + ".tmp", _OUT.value)
  print(format_table(rows))
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  config_util.run(main)
