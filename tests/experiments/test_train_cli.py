"""`python -m experiments.train` as a user runs it: errors, and resume after SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = "experiments/configs/train_cifar.py"
# A cheap NB201 cell (convolutions and skips only) in a 4-channel, 1-cell-per-stage skeleton.
TINY_CELL = ("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
             "+|skip_connect~0|none~1|nor_conv_3x3~2|")


def _command(workdir, *overrides) -> list[str]:
  return [sys.executable, "-m", "experiments.train", f"--config={CONFIG}",
          f"--workdir={workdir}", *overrides]


def _start(args: list[str]) -> subprocess.Popen:
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def test_user_errors_print_one_line_and_exit_2(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  cases = {
      "unknown dataset": (["--config.data.name=no_such_dataset"], "no_such_dataset"),
      "bad key": (["--config.no_such_key=1"], "no_such_key"),
      "missing genotype": ([f"--config.genotype={tmp_path / 'missing.json'}"], "missing.json"),
      "unwritable workdir": ([], "--workdir"),
  }
  procs = {}
  for name, (overrides, _) in cases.items():
    workdir = blocker / "run" if name == "unwritable workdir" else tmp_path / name.replace(" ", "_")
    procs[name] = _start(_command(workdir, *overrides))
  for name, proc in procs.items():
    _, stderr = proc.communicate(timeout=300)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (name, stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), (name, stderr)
    assert cases[name][1] in lines[0], (name, lines[0])


def _tiny_run(tmp_path, name) -> tuple[str, list[str]]:
  cell = tmp_path / "tiny.nb201"
  cell.write_text(TINY_CELL + "\n")
  workdir = str(tmp_path / name)
  return workdir, _command(
      workdir, f"--config.genotype={cell}", "--config.nb201_overrides.channels=4",
      "--config.nb201_overrides.cells_per_stage=1", "--config.data.train_split=train[:256]",
      "--config.data.eval_split=test[:128]", "--config.batch_size=64",
      "--config.eval_batch_size=64", "--config.num_epochs=4", "--config.log_every=4 steps",
      "--config.eval_every=0", "--config.checkpoint_every=4 steps", "--config.data.cutout=8")


def _final_params(workdir: str) -> dict:
  directory = os.path.join(workdir, "checkpoints")
  step = max(int(d) for d in os.listdir(directory) if d.isdigit())
  with ocp.StandardCheckpointer() as checkpointer:
    restored = checkpointer.restore(os.path.join(directory, str(step), "default"))
  return restored["params"]


def test_sigkill_then_restart_matches_uninterrupted_run(tmp_path):
  straight_dir, straight = _tiny_run(tmp_path, "straight")
  killed_dir, killed = _tiny_run(tmp_path, "killed")
  proc = _start(killed)
  first_checkpoint = os.path.join(killed_dir, "checkpoints", "4")
  deadline = time.time() + 300
  while not os.path.isdir(first_checkpoint) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert proc.returncode == -signal.SIGKILL
  assert not os.path.exists(os.path.join(killed_dir, "metrics.json"))  # killed midway

  restarted = _start(killed)
  reference = _start(straight)
  for p in (restarted, reference):
    _, stderr = p.communicate(timeout=600)
    assert p.returncode == 0, stderr[-2000:]

  a = json.load(open(os.path.join(straight_dir, "metrics.json")))
  b = json.load(open(os.path.join(killed_dir, "metrics.json")))
  assert a["steps"] == b["steps"] == 16
  for key in ("test_accuracy", "test_loss", "train_loss", "train_accuracy"):
    assert abs(a[key] - b[key]) <= 1e-6, key
  assert a["examples_per_second"] > 0
  pa, pb = _final_params(straight_dir), _final_params(killed_dir)
  diffs = [np.max(np.abs(x - y)) for x, y in zip(_leaves(pa), _leaves(pb))]
  assert len(diffs) > 5 and max(diffs) <= 1e-6


def _leaves(tree):
  import jax
  return jax.tree.leaves(tree)


def test_multihost_detects_the_standard_environment():
  from launch import multihost
  from models.errors import UserError
  assert multihost.cluster_kind({}) is None
  assert multihost.cluster_kind({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2",
                                 "JAX_PROCESS_ID": "1"}) == "env"
  assert multihost.cluster_kind({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}) == "slurm"
  assert multihost.cluster_kind({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is None
  assert not multihost.initialize({})
  with pytest.raises(UserError, match="JAX_PROCESS_ID"):
    multihost.initialize({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"})
