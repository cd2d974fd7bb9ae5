"""The launcher's own logic: commands, environments, cluster detection, process groups,
and bad input failing fast with one line."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from launch import cli, local, multihost, process_group, target
from models.errors import UserError

ROOT = target.REPO_ROOT
TRAIN = ["experiments.train", "--config=experiments/configs/train_cifar.py"]


def test_the_command_is_an_experiments_module_and_its_flags_unchanged():
  t = target.parse([*TRAIN, "--workdir=a b"])
  assert t.module == "experiments.train" and t.words == [*TRAIN, "--workdir=a b"]
  assert t.argv("py") == ["py", "-m", *TRAIN, "--workdir=a b"]
  assert target.parse(["experiments.benchmarks.compile_time"]).args == ()
  for words, message in [([], "no command to run"), (["train.py"], "not an experiments"),
                         (["os.path"], "not an experiments"),
                         (["experiments.no_such_cli"], "no module 'experiments.no_such_cli'")]:
    with pytest.raises(UserError, match=message):
      target.parse(words)
  with pytest.raises(UserError, match="put `--` before the command"):
    cli.run(["local", *TRAIN])


def test_local_environments():
  assert local.cpu_devices_env(0) == {}
  assert local.process_env(1, 2, 1234, devices=2) == {
      "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "2",
      "JAX_COORDINATOR_ADDRESS": "localhost:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
  for args, message in [(["--processes=0"], "--processes=0"), (["--devices=-1"], "--devices")]:
    with pytest.raises(UserError, match=message):
      cli.run(["local", *args, "--", *TRAIN])


def test_cluster_detection():
  assert multihost.cluster_kind({}) is None
  assert multihost.cluster_kind({"JAX_PROCESS_ID": "0"}) == "env"
  assert multihost.cluster_kind({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}) == "slurm"
  assert multihost.cluster_kind({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is None
  assert multihost.cluster_kind({"OMPI_MCA_orte_hnp_uri": "1.2@tcp://10.0.0.1:5",
                                 "OMPI_COMM_WORLD_SIZE": "2"}) == "ompi"
  assert multihost.cluster_kind({"TPU_WORKER_HOSTNAMES": "a,b"}) == "tpu"
  # Explicit settings win over a surrounding SLURM allocation.
  assert multihost.cluster_kind({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4",
                                 "JAX_COORDINATOR_ADDRESS": "h:1"}) == "env"
  assert not multihost.initialize({})
  assert not multihost.initialize({"JAX_PROCESS_ID": "0"}, cluster="none")
  bad = [({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"}, "JAX_PROCESS_ID not set"),
         ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
          r"JAX_PROCESS_ID=2 is not in 0\.\.1"),
         ({"JAX_COORDINATOR_ADDRESS": "h", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"},
          "host:port"),
         ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"},
          "integers")]
  for environ, message in bad:
    with pytest.raises(UserError, match=message):
      multihost.initialize(environ)


@pytest.mark.slow
def test_process_group_stops_everyone_at_the_first_failure(tmp_path):
  sleeper = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"]
  failing = [sys.executable, "-c", "import sys, time; time.sleep(0.5); print('boom'); sys.exit(3)"]
  members = [process_group.Member(f"p{i}", argv, str(tmp_path / f"p{i}.log"))
             for i, argv in enumerate([sleeper, failing, sleeper])]
  stopped = []
  started = time.perf_counter()
  assert process_group.run_group(members, on_failure=lambda: stopped.append(1)) == 3
  assert time.perf_counter() - started < 20 and stopped == [1]
  assert (tmp_path / "p1.log").read_text().strip() == "boom"
  assert (tmp_path / "p0.log").read_text().strip() == "up"
  ok = [process_group.Member("ok", [sys.executable, "-c", "pass"], str(tmp_path / "ok.log"))]
  assert process_group.run_group(ok) == 0


BAD_INPUT = {
    "unknown accelerator": (["tpu", "up", "--name=a", "--zone=z", "--accelerator=v9-8", "--",
                             *TRAIN], "unknown TPU generation"),
    "missing zone": (["tpu", "up", "--name=a", "--accelerator=v4-32", "--", *TRAIN],
                     "--zone is required"),
    "not an experiments module": (["local", "--", "train.py"], "not an experiments"),
    "missing module": (["multihost", "--", "experiments.nope"], "no module"),
    "bad slurm nodes": (["slurm", "--nodes=0", "--", *TRAIN], "--nodes must be >= 1"),
    "unknown subcommand": (["ray", "--", *TRAIN], "invalid choice: 'ray'"),
}


@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2_within_seconds(tmp_path):
  timings = {}
  for name, (args, message) in BAD_INPUT.items():
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "launch", *args], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True)
    timings[name] = time.perf_counter() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, (name, done.stderr)
    assert lines[0].startswith("error: ") and message in lines[0], (name, lines[0])
    assert timings[name] < 5, (name, timings[name])
  alias = subprocess.run([sys.executable, "-m", "launch.multihost", "--", "experiments.nope"],
                         cwd=ROOT, capture_output=True, text=True)
  assert alias.returncode == 2 and "no module" in alias.stderr
  print("\n" + "; ".join(f"{name}: {t:.2f} s" for name, t in timings.items()))


@pytest.mark.slow
def test_nothing_imports_jax_before_the_input_is_checked():
  probe = ("import sys\nfrom launch import cli\nfrom models.errors import UserError\n"
           "try:\n  cli.run(['tpu', 'up', '--name=a', '--zone=z', '--accelerator=v9-8', '--', "
           "'experiments.train'])\nexcept UserError:\n  pass\n"
           "print(sorted(m for m in ('jax', 'tensorflow', 'numpy') if m in sys.modules))")
  done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
  assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.slow
def test_local_processes_share_the_first_failure(tmp_path):
  """Two real processes join through jax.distributed, a bad flag stops both: exit 2."""
  started = time.perf_counter()
  done = subprocess.run(
      [sys.executable, "-m", "launch", "local", "--processes=2", "--devices=1",
       f"--log-dir={tmp_path}", "--", *TRAIN, "--config.no_such_key=1", f"--workdir={tmp_path}"],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
      timeout=300)
  assert done.returncode == 2, done.stderr
  assert "exited with code 2" in done.stderr
  logs = {name: (tmp_path / name).read_text() for name in ("process-0.log", "process-1.log")}
  assert any("no_such_key" in text for text in logs.values())
  assert all("joined the multi-process job" in text for text in logs.values())
  assert time.perf_counter() - started < 120
