"""The DARTS search CLI: artifacts, and SIGKILL + restart gives the uninterrupted result."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--config.model.space=nb201", "--config.model.layers=3", "--config.model.steps=1",
        "--config.model.multiplier=1", "--config.model.channels=2", "--config.data.image_size=8",
        "--config.data.num_examples=128", "--config.batch_size=16", "--config.epochs=2",
        "--config.checkpoint_every=2 steps", "--config.log_every=4 steps",
        "--config.arch.order=1"]  # resume is order-blind; first order compiles in a fraction


def search_command(workdir):
  return [sys.executable, "-m", "experiments.search",
          "--config=experiments/configs/darts_cifar10.py", f"--workdir={workdir}", *TINY]


def env(cache_dir):
  e = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(cache_dir),
           JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", PYTHONPATH=ROOT)
  e["XLA_FLAGS"] = ""  # one device: the CLI's own setting
  return e


def test_sigkill_then_restart_gives_the_uninterrupted_genotype(tmp_path):
  cache = tmp_path / "jax_cache"
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  subprocess.run(search_command(straight), cwd=ROOT, env=env(cache), check=True,
                 capture_output=True, timeout=600)
  expected = (straight / "genotype.json").read_text()
  assert sorted(os.listdir(straight / "genotypes")) == ["epoch_001.json", "epoch_002.json"]
  assert os.path.exists(straight / "alpha" / "epoch_002.png")
  assert os.path.exists(straight / "diagrams" / "epoch_002_normal.png")

  proc = subprocess.Popen(search_command(killed), cwd=ROOT, env=env(cache),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  checkpoints = killed / "checkpoints"
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    steps = [d for d in os.listdir(checkpoints) if d.isdigit()] if checkpoints.exists() else []
    if any(int(d) >= 4 for d in steps):
      break
    time.sleep(0.2)
  assert proc.poll() is None, "the run finished before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (killed / "genotype.json").exists()
  subprocess.run(search_command(killed), cwd=ROOT, env=env(cache), check=True,
                 capture_output=True, timeout=600)
  assert (killed / "genotype.json").read_text() == expected
  metrics = {p: json.loads((p / "metrics.json").read_text()) for p in (straight, killed)}
  assert metrics[straight]["genotype_hash"] == metrics[killed]["genotype_hash"]
  assert metrics[killed]["steps"] == metrics[straight]["steps"] == 8
