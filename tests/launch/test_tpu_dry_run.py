"""`python -m launch tpu ... --dry-run`: the exact gcloud commands of every step."""
from __future__ import annotations

import shlex

import pytest

from launch import cli, tpu_commands
from models.errors import UserError

TRAIN = ["experiments.train", "--config=experiments/configs/train_cifar.py",
         "--workdir=gs://bucket/runs/v4 run"]


def _dry_run(capsys, *args: str, command=TRAIN) -> list[list[str]]:
  assert cli.run(["tpu", *args, "--dry-run", "--", *command] if command else
                 ["tpu", *args, "--dry-run"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines and all(line.startswith(("gcloud ", "# ")) for line in lines)
  return [shlex.split(line) for line in lines if line.startswith("gcloud ")]


def _flags(argv: list[str]) -> dict[str, str]:
  return dict(a[2:].split("=", 1) if "=" in a else (a[2:], "") for a in argv if a.startswith("--"))


SLICE = ["--name=nas-v4", "--zone=us-central2-b", "--accelerator=v4-32"]


def test_up_creates_copies_installs_runs_on_every_worker_and_tears_down(capsys):
  steps = _dry_run(capsys, "up", *SLICE, "--teardown")
  create, copy, unpack, install, *runs, delete = steps
  assert create[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "create"] and create[5] == "nas-v4"
  assert _flags(create) == {"zone": "us-central2-b", "accelerator-type": "v4-32",
                            "version": "tpu-ubuntu2204-base"}
  assert copy[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"]
  assert copy[5].endswith("nas-src.tar.gz") and copy[6] == "nas-v4:~/nas-src.tar.gz"
  assert _flags(copy) == {"zone": "us-central2-b", "worker": "all"}
  assert _flags(unpack)["worker"] == "all" and "tar -xzf ~/nas-src.tar.gz -C ~/nas" in \
      _flags(unpack)["command"]
  setup = _flags(install)["command"]
  assert _flags(install)["worker"] == "all"
  assert "bash launch/setup_env.sh" in setup and '"jax[tpu]==0.10.2"' in setup
  # The same command on all 4 hosts of a v4-32 (16 chips, 4 per host), one session each.
  assert [_flags(r)["worker"] for r in runs] == ["0", "1", "2", "3"]
  for r in runs:
    remote = shlex.split(_flags(r)["command"])
    assert remote[:2] == ["bash", "~/nas/launch/tpu_worker.sh"] and remote[2:] == TRAIN
  assert delete[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "nas-v4"]
  assert "--quiet" in delete


def test_queued_spot_and_reserved_requests(capsys):
  create, describe = _dry_run(capsys, "create", *SLICE, "--queued", "--spot", command=None)
  assert create[:5] == ["gcloud", "compute", "tpus", "queued-resources", "create"]
  assert _flags(create) == {"node-id": "nas-v4", "zone": "us-central2-b",
                            "accelerator-type": "v4-32",
                            "runtime-version": "tpu-ubuntu2204-base", "spot": ""}
  assert describe[4:6] == ["describe", "nas-v4"] and "--format=json" in describe
  (reserved,) = _dry_run(capsys, "create", "--name=v5", "--zone=us-east5-b",
                         "--accelerator=v5litepod-16", "--reserved", "--project=p", command=None)
  assert _flags(reserved) == {"zone": "us-east5-b", "project": "p",
                              "accelerator-type": "v5litepod-16",
                              "version": "v2-alpha-tpuv5-lite", "reserved": ""}
  (delete,) = _dry_run(capsys, "delete", *SLICE, "--queued", command=None)
  assert delete[:6] == ["gcloud", "compute", "tpus", "queued-resources", "delete", "nas-v4"]
  assert "--force" in delete and "--quiet" in delete


def test_logs_stop_and_run_on_an_existing_slice(capsys):
  logs = _dry_run(capsys, "logs", *SLICE, "--log-dir=/tmp/l", command=None)
  assert [(argv[5], argv[6], _flags(argv)["worker"]) for argv in logs] == [
      ("nas-v4:" + tpu_commands.REMOTE_LOG, f"/tmp/l/worker-{k}.remote.log", str(k))
      for k in range(4)]
  (stop,) = _dry_run(capsys, "stop", *SLICE, command=None)
  assert _flags(stop)["worker"] == "all" and "kill -TERM" in _flags(stop)["command"]
  runs = _dry_run(capsys, "run", "--name=one", "--zone=z", "--accelerator=v6e-8")
  assert len(runs) == 1 and _flags(runs[0])["worker"] == "0"  # v6e-8: one host


@pytest.mark.parametrize("args, message", [
    (["up", "--name=a", "--accelerator=v4-32"], "--zone is required"),
    (["up", "--name=a", "--zone=z", "--accelerator=v9-8"], "unknown TPU generation"),
    (["up", "--name=a", "--zone=z", "--accelerator=v4-30"], "v4 has no size 30"),
    (["up", "--name=a", "--zone=z", "--accelerator=big"], "unknown accelerator type 'big'"),
    (["create", "--name=a", "--zone=z"], "--accelerator is required"),
    (["up", "--name=A_b", "--zone=z", "--accelerator=v4-8"], "lowercase"),
    (["up", "--name=a", "--zone=z", "--accelerator=v4-8", "--spot", "--reserved"],
     "not allowed with argument"),
])
def test_bad_tpu_input_is_one_user_error(args, message):
  with pytest.raises(UserError, match=message):
    cli.run(["tpu", *args, "--dry-run", "--", *TRAIN])


def test_run_needs_a_command():
  with pytest.raises(UserError, match="no command to run"):
    cli.run(["tpu", "run", *SLICE, "--dry-run"])
