"""`launch tpu up` against a fake gcloud: fail-fast across workers, relaunch after preemption."""
from __future__ import annotations

import json
import os
import stat
import sys
import time

import pytest

from launch import cli

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def fake_gcloud(tmp_path, monkeypatch):
  bin_dir, state = tmp_path / "bin", tmp_path / "gcloud-state"
  bin_dir.mkdir()
  state.mkdir()
  gcloud = bin_dir / "gcloud"
  gcloud.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE}/fake_gcloud.py \"$@\"\n")
  gcloud.chmod(gcloud.stat().st_mode | stat.S_IEXEC)
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  monkeypatch.setenv("FAKE_GCLOUD_DIR", str(state))
  return state


def _calls(state) -> list[list[str]]:
  return [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]


def _steps(state) -> list[str]:
  """The calls in order; the workers of one round start together, so in any order."""
  steps = [_step(c) for c in _calls(state)]
  rounds, out = [], []
  for step in steps + [""]:
    if step.startswith("run "):
      rounds.append(step)
      continue
    out += sorted(rounds)
    rounds = []
    out.append(step)
  return out[:-1]


def _step(argv: list[str]) -> str:
  flags = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
  command = flags.get("command", "")
  if "tpu_worker.sh" in command:
    return f"run {flags['worker']}"
  if "kill -TERM" in command:
    return "stop"
  if "setup_env.sh" in command:
    return "install"
  if "tar -xzf" in command:
    return "unpack"
  return argv[4]


@pytest.mark.slow
def test_preempted_slice_is_recreated_and_the_run_relaunched(fake_gcloud, tmp_path):
  # Round 0: worker 1 is preempted while worker 0 would run on; round 1 succeeds.
  (fake_gcloud / "script.json").write_text(json.dumps([["sleep", "preempt"], ["ok", "ok"]]))
  started = time.perf_counter()
  code = cli.run(["tpu", "up", "--name=nas", "--zone=z", "--accelerator=v4-16", "--spot",
                  "--teardown", f"--log-dir={tmp_path / 'logs'}", "--",
                  "experiments.train", "--config=experiments/configs/train_cifar.py"])
  elapsed = time.perf_counter() - started
  assert code == 0
  steps = _steps(fake_gcloud)
  one_round = ["scp", "unpack", "install", "describe", "run 0", "run 1"]
  assert steps == ["create", *one_round, "stop", "describe", "delete", "create", *one_round,
                   "delete"], steps
  assert all("--spot" in c for c in _calls(fake_gcloud) if c[4] == "create")
  # Worker 0 (sleeping) was stopped as soon as worker 1 failed, not after its 600 s.
  assert elapsed < 60
  log0 = (tmp_path / "logs" / "worker-0.log").read_text()
  assert "round 0: sleep" in log0 and "round 1: ok" in log0
  assert (tmp_path / "logs" / "nas-src.tar.gz").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("action, code, rounds", [("fail", 1, 1), ("term", 0, 2)])
def test_failure_on_a_live_slice_is_returned_and_sigterm_is_rerun(fake_gcloud, tmp_path,
                                                                   action, code, rounds):
  """A crash on a slice that is still READY is the user's: no relaunch. A run stopped by
  SIGTERM (exit 143, e.g. host maintenance) runs again on the same slice."""
  (fake_gcloud / "script.json").write_text(json.dumps([["ok", action], ["ok", "ok"]]))
  (fake_gcloud / "state").write_text("READY")
  assert cli.run(["tpu", "up", "--existing", "--name=nas", "--zone=z",
                  f"--log-dir={tmp_path / 'logs'}", "--", "experiments.train"]) == code
  steps = _steps(fake_gcloud)
  assert "create" not in steps and "delete" not in steps
  assert steps.count("run 0") == steps.count("run 1") == rounds
  assert steps.count("stop") == 1  # the first round's failure stopped the other worker
