"""Two real JAX processes train together through `python -m launch multihost`.

Each process has 2 CPU devices, joined by `jax.distributed` (coordinator on
localhost, gloo collectives) into one `data` axis of 4 devices. They must end with
identical parameters, equal to a single process with 4 devices on the same global
batches, and a run whose two processes are both SIGKILLed after a checkpoint must
resume to the same end.
"""
from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from launch import local

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_CELL = ("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
             "+|skip_connect~0|none~1|nor_conv_3x3~2|")
STEPS = 12  # 3 epochs of 4 steps (256 examples, global batch 64)


def _train_words(tmp_path, workdir: str) -> list[str]:
  cell = tmp_path / "tiny.nb201"
  cell.write_text(TINY_CELL + "\n")
  return ["experiments.train", "--config=experiments/configs/train_cifar.py",
          f"--workdir={workdir}", f"--config.genotype={cell}",
          "--config.nb201_overrides.channels=4", "--config.nb201_overrides.cells_per_stage=1",
          "--config.data.train_split=train[:256]", "--config.data.eval_split=test[:64]",
          "--config.batch_size=64", "--config.eval_batch_size=64", "--config.num_epochs=3",
          "--config.log_every=4", "--config.eval_every=0", "--config.checkpoint_every=4",
          "--config.data.cutout=8"]


def _env(dump_dir, **extra) -> dict[str, str]:
  env = dict(os.environ, PYTHONPATH=ROOT, REPLICA_DUMP_DIR=str(dump_dir), **extra)
  env.pop("XLA_FLAGS", None)  # device counts come from the launcher here
  return env


def _start_pair(tmp_path, name: str) -> tuple[list[subprocess.Popen], str, str]:
  """Two `launch multihost` processes of 2 CPU devices each, under the replica probe."""
  workdir, dumps = str(tmp_path / name), tmp_path / f"{name}-replicas"
  dumps.mkdir(exist_ok=True)
  port = local.free_port()
  procs = []
  for rank in range(2):
    env = _env(dumps, **local.process_env(rank, 2, port, devices=2))
    # Files, not pipes: a process blocked on a full pipe would stall the other's collectives.
    log = open(tmp_path / f"{name}-process-{rank}.log", "a")
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "tests.launch.replica_probe", "multihost", "--",
         *_train_words(tmp_path, workdir)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    procs[-1].log = log
  return procs, workdir, str(dumps)


def _finish(procs: list[subprocess.Popen]) -> None:
  for proc in procs:
    proc.wait(timeout=300)
    proc.log.close()
    with open(proc.log.name) as f:
      assert proc.returncode == 0, f.read()[-3000:]


def _replicas(dump_dir: str, process: int, step: int) -> dict[str, np.ndarray]:
  with np.load(os.path.join(dump_dir, f"replicas-p{process}-step{step}.npz")) as f:
    return dict(f)


def _max_abs_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray],
                        prefix: str = "") -> float:
  keys = [k for k in a if k.startswith(prefix)]
  assert keys and sorted(keys) == sorted(k for k in b if k.startswith(prefix))
  return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in keys)


def _single_process_reference(tmp_path) -> dict[str, np.ndarray]:
  """One process with 4 devices, through `launch local`: the state it ends with."""
  dumps = tmp_path / "single-replicas"
  dumps.mkdir()
  done = subprocess.run(
      [sys.executable, "-m", "tests.launch.replica_probe", "local", "--devices=4", "--",
       *_train_words(tmp_path, str(tmp_path / "single"))],
      cwd=ROOT, env=_env(dumps), capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  return _replicas(str(dumps), 0, STEPS)


def _kill_both_after_the_first_checkpoint(tmp_path) -> int:
  """Starts the "killed" pair, SIGKILLs both once checkpoint 4 is committed; returns
  the last step on disk."""
  procs, workdir, _ = _start_pair(tmp_path, "killed")
  first = os.path.join(workdir, "checkpoints", "4")
  deadline = time.time() + 300
  while not os.path.isdir(first) and all(p.poll() is None for p in procs) \
      and time.time() < deadline:
    time.sleep(0.02)
  for proc in procs:
    proc.send_signal(signal.SIGKILL)
  for proc in procs:
    proc.wait()
    proc.log.close()
    assert proc.returncode == -signal.SIGKILL
  assert not os.path.exists(os.path.join(workdir, "metrics.json"))  # killed midway
  return max(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())


@pytest.mark.slow
def test_two_processes_train_like_one_and_resume_after_sigkill(tmp_path):
  from experiments.data import pipeline
  pipeline.open_dataset("shapes32")  # generated once here, not by two processes at once
  started = time.perf_counter()
  reference = _single_process_reference(tmp_path)
  assert len(reference) > 10

  procs, straight_dir, straight_dumps = _start_pair(tmp_path, "straight")
  _finish(procs)
  p0, p1 = (_replicas(straight_dumps, p, STEPS) for p in (0, 1))
  between_processes = _max_abs_difference(p0, p1)
  params_against_single = _max_abs_difference(p0, reference, prefix=".params")
  # BatchNorm statistics relative to their size; momentum buffers differ more (they sum
  # per-device gradients reduced in another order), so they are reported, not bounded.
  stats_against_single = max(_max_abs_difference(p0, reference, prefix=k) /
                             max(1.0, float(np.max(np.abs(reference[k]))))
                             for k in reference if k.startswith(".model_state"))
  state_against_single = _max_abs_difference(p0, reference)

  killed_at = _kill_both_after_the_first_checkpoint(tmp_path)
  assert killed_at < STEPS
  procs, killed_dir, killed_dumps = _start_pair(tmp_path, "killed")
  _finish(procs)
  resumed_against_straight = max(_max_abs_difference(_replicas(killed_dumps, p, STEPS), p0)
                                 for p in (0, 1))
  on_disk = _restore_params(killed_dir, STEPS)
  reference_params = {_plain(k): v for k, v in reference.items() if k.startswith(".params")}
  assert sorted(on_disk) == sorted(reference_params)
  disk_against_single = max(float(np.max(np.abs(on_disk[k] - reference_params[k])))
                            for k in on_disk)
  print(f"\nmax |dparam| process 0 vs 1: {between_processes:.3g}; 2 processes vs 1 process: "
        f"{params_against_single:.3g} (BatchNorm statistics, relative: "
        f"{stats_against_single:.3g}; momentum: {state_against_single:.3g}); resumed after "
        f"SIGKILL at step {killed_at} vs uninterrupted: {resumed_against_straight:.3g}; "
        f"resumed checkpoint on disk vs 1 process: {disk_against_single:.3g}; "
        f"{time.perf_counter() - started:.1f} s")
  assert between_processes == 0.0
  assert params_against_single <= 1e-6 and stats_against_single <= 1e-6
  assert resumed_against_straight <= 1e-6 and disk_against_single <= 1e-6
  _check_metrics(tmp_path, straight_dir, killed_dir)
  assert len(glob.glob(os.path.join(straight_dumps, "replicas-p*-step*.npz"))) == 2 * 3


def _check_metrics(tmp_path, straight_dir: str, killed_dir: str) -> None:
  a, b, s = (json.load(open(os.path.join(d, "metrics.json")))
             for d in (straight_dir, killed_dir, tmp_path / "single"))
  assert a["devices"] == b["devices"] == s["devices"] == 4
  assert a["steps"] == b["steps"] == STEPS
  for key in ("train_loss", "test_loss", "test_accuracy"):
    assert abs(a[key] - s[key]) <= 1e-6 and abs(a[key] - b[key]) <= 1e-6, key


def _restore_params(workdir: str, step: int) -> dict[str, np.ndarray]:
  """The checkpoint the two processes wrote, read back by this one process (another
  topology: the target tree says where the arrays go)."""
  import jax
  path = os.path.join(workdir, "checkpoints", str(step), "default")
  here = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  with ocp.StandardCheckpointer() as checkpointer:
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=here),
                          checkpointer.metadata(path).item_metadata)
    state = checkpointer.restore(path, target)
  leaves = jax.tree_util.tree_flatten_with_path(state["params"])[0]
  return {_plain(".params" + jax.tree_util.keystr(path)): np.asarray(leaf)
          for path, leaf in leaves}


def _plain(key: str) -> str:
  """`.params['conv']['kernel'].value` and `['params']['conv']['kernel']['value']` alike."""
  return "/".join(re.findall(r"\w+", key))
