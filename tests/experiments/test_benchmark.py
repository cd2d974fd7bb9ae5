"""The performance benchmark's plumbing (its numbers are measured by running it, not here)."""
from __future__ import annotations

import os
import subprocess
import sys

from experiments import benchmark
from experiments.benchmarks import compile_time, suites

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_rows_carry_the_jax_to_torch_ratio_and_print_as_a_table():
  rows = [dict(suites._row("net", 3.0, 1.5, "d"), suite="s"),
          dict(suites._row("other", 2.0, None, ""), suite="s")]
  assert rows[0]["jax/torch"] == 2.0 and rows[1]["jax/torch"] is None
  lines = benchmark.format_table(rows).splitlines()
  assert lines[0].split() == ["suite", "name", "jax_s", "torch_s", "jax/torch", "detail"]
  assert lines[1].split() == ["s", "net", "3.000", "1.500", "2.000", "d"]


def test_unknown_suite_is_one_line_and_exit_2(tmp_path):
  out = subprocess.run([sys.executable, "-m", "experiments.benchmark", "--suite=nope",
                        f"--out={tmp_path / 'b.json'}"], cwd=ROOT, capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=ROOT))
  assert out.returncode == 2
  assert out.stderr.strip().splitlines()[-1].startswith("error: --suite: unknown suite 'nope'")


def test_compile_worker_writes_the_train_step_to_the_persistent_cache(tmp_path):
  cache = tmp_path / "cache"
  rows = compile_time.run_worker(children=1, layers=2, filters=4, batch_size=4,
                                 scan_cells=False, cache_dir=str(cache))
  (row,) = rows
  assert row["num_params"] > 0 and row["train_compile_s"] > 0 and row["step_s"] > 0
  assert row["total_s"] >= row["train_compile_s"] + row["eval_compile_s"]
  assert any(name.startswith("jit_step") for name in os.listdir(cache))
