"""`python -m launch slurm`: the sbatch script, and what each of its tasks gets.

The script is run for real with bash, with `srun` and `scontrol` replaced by small
fakes that start every task of the allocation on this machine the way Slurm would
(SLURM_PROCID, SLURM_LOCALID, ... set per task) and a fake Python that records the
environment and arguments each task starts with.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from launch import cli, target
from models.errors import UserError

TRAIN = ["experiments.train", "--config=experiments/configs/train_cifar.py",
         "--workdir=/shared/runs/a b"]
FAKE_SRUN = r'''
import os, re, subprocess, sys
args = sys.argv[1:]
options = [a for a in args if a.startswith("--")]
command = [a for a in args if not a.startswith("--")]
output = dict(o[2:].split("=", 1) for o in options if "=" in o)["output"]
per_node = int(os.environ["SLURM_NTASKS_PER_NODE"])
codes = []
for task in range(int(os.environ["SLURM_NTASKS"])):
  env = dict(os.environ, SLURM_PROCID=str(task), SLURM_LOCALID=str(task % per_node),
             SLURM_NODEID=str(task // per_node))
  log = output.replace("%x", os.environ["SLURM_JOB_NAME"]).replace(
      "%j", os.environ["SLURM_JOB_ID"]).replace("%t", str(task))
  with open(log, "w") as f:
    codes.append(subprocess.call(command, env=env, stdout=f, stderr=subprocess.STDOUT))
sys.exit(max(codes))
'''
FAKE_SCONTROL = r'''
import re, sys
assert sys.argv[1:3] == ["show", "hostnames"]
prefix, low, high = re.fullmatch(r"(\w+)\[(\d+)-(\d+)\]", sys.argv[3]).groups()
for i in range(int(low), int(high) + 1):
  print(f"{prefix}{i:0{len(low)}d}")
'''
FAKE_PYTHON = r'''
import json, os, sys
keys = [k for k in os.environ if k.startswith(("JAX_", "SLURM_"))]
record = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": {k: os.environ[k] for k in keys}}
with open(os.path.join(os.environ["TASKS_DIR"], os.environ["SLURM_PROCID"] + ".json"), "w") as f:
  json.dump(record, f)
'''


def _executable(path, body: str) -> str:
  path.write_text(f"#!{sys.executable}\n{body}")
  path.chmod(path.stat().st_mode | stat.S_IEXEC)
  return str(path)


@pytest.fixture
def fake_slurm(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _executable(bin_dir / "srun", FAKE_SRUN)
  _executable(bin_dir / "scontrol", FAKE_SCONTROL)
  python = _executable(tmp_path / "python", FAKE_PYTHON)
  return bin_dir, python


def _write(tmp_path, python: str, *args: str) -> str:
  script = tmp_path / "job.sbatch"
  assert cli.run(["slurm", *args, f"--python={python}", f"--log-dir={tmp_path / 'logs'}",
                  f"--script={script}", "--", *TRAIN]) == 0
  return str(script)


def _header(script: str) -> dict[str, str]:
  lines = open(script).read().splitlines()
  assert lines[0] == "#!/bin/bash"
  return dict(line[len("#SBATCH --"):].split("=", 1) if "=" in line
              else (line[len("#SBATCH --"):], "") for line in lines if line.startswith("#SBATCH"))


def _run_tasks(tmp_path, script: str, bin_dir, *, nodes: int, tasks_per_node: int) -> list[dict]:
  tasks_dir = tmp_path / "tasks"
  tasks_dir.mkdir()
  env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
             TASKS_DIR=str(tasks_dir), SLURM_JOB_ID="123456", SLURM_JOB_NAME="nas",
             SLURM_JOB_NODELIST=f"gpu[07-{6 + nodes:02d}]", SLURM_NNODES=str(nodes),
             SLURM_NTASKS=str(nodes * tasks_per_node),
             SLURM_NTASKS_PER_NODE=str(tasks_per_node))
  done = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=60)
  assert done.returncode == 0, done.stderr
  records = [json.loads((tasks_dir / f"{t}.json").read_text())
             for t in range(nodes * tasks_per_node)]
  logs = sorted(os.listdir(tmp_path / "logs"))
  assert [n for n in logs if n.endswith(".log")] == sorted(
      f"nas-123456-task{t}.log" for t in range(nodes * tasks_per_node))
  return records


PORT = str(123456 % 4096 + 61440)


@pytest.mark.slow
def test_one_process_per_gpu(tmp_path, fake_slurm):
  bin_dir, python = fake_slurm
  script = _write(tmp_path, python, "--nodes=2", "--gpus-per-node=4", "--mode=gpu",
                  "--partition=a100", "--time=02:00:00")
  header = _header(script)
  assert header == {"job-name": "nas", "nodes": "2", "ntasks-per-node": "4",
                    "gpus-per-node": "4", "time": "02:00:00", "requeue": "",
                    "output": f"{tmp_path / 'logs'}/%x-%j.out", "partition": "a100"}
  tasks = _run_tasks(tmp_path, script, bin_dir, nodes=2, tasks_per_node=4)
  for rank, task in enumerate(tasks):
    env = task["env"]
    assert env["JAX_PROCESS_ID"] == str(rank) and env["JAX_NUM_PROCESSES"] == "8"
    assert env["JAX_COORDINATOR_ADDRESS"] == f"gpu07:{PORT}"   # the job's first host
    assert env["JAX_LOCAL_DEVICE_IDS"] == str(rank % 4)        # its own GPU on its node
    assert task["argv"] == ["-m", "launch", "multihost", "--", *TRAIN]
    assert task["cwd"] == target.REPO_ROOT


@pytest.mark.slow
def test_one_process_per_node_owns_all_its_gpus(tmp_path, fake_slurm):
  bin_dir, python = fake_slurm
  script = _write(tmp_path, python, "--nodes=3", "--gpus-per-node=8", "--mode=node",
                  "--port=12345")
  assert _header(script)["ntasks-per-node"] == "1"
  tasks = _run_tasks(tmp_path, script, bin_dir, nodes=3, tasks_per_node=1)
  assert [t["env"]["JAX_PROCESS_ID"] for t in tasks] == ["0", "1", "2"]
  for task in tasks:
    assert task["env"]["JAX_NUM_PROCESSES"] == "3"
    assert task["env"]["JAX_COORDINATOR_ADDRESS"] == "gpu07:12345"
    assert task["env"]["JAX_LOCAL_DEVICE_IDS"] == "0,1,2,3,4,5,6,7"


def test_submit_runs_sbatch_on_the_script(tmp_path, monkeypatch):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _executable(bin_dir / "sbatch", "import sys\nopen(sys.argv[1] + '.submitted', 'w').close()\n")
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  script = tmp_path / "j.sbatch"
  assert cli.run(["slurm", "--submit", f"--script={script}", f"--log-dir={tmp_path}", "--",
                  *TRAIN]) == 0
  assert (tmp_path / "j.sbatch.submitted").exists()
  monkeypatch.setenv("PATH", str(tmp_path / "empty"))
  with pytest.raises(UserError, match="sbatch not found"):
    cli.run(["slurm", "--submit", f"--script={script}", f"--log-dir={tmp_path}", "--", *TRAIN])


@pytest.mark.parametrize("args, message", [
    (["--nodes=0"], "--nodes must be >= 1"),
    (["--mode=socket"], "invalid choice: 'socket'"),
    (["--gpus-per-node=0"], "--gpus-per-node must be >= 1"),
])
def test_bad_slurm_input_is_one_user_error(tmp_path, args, message):
  with pytest.raises(UserError, match=message):
    cli.run(["slurm", *args, f"--log-dir={tmp_path}", "--", *TRAIN])
