"""`slurm`: write (and with --submit, submit) an sbatch script that runs the command.

Two layouts of the same job:
  --mode=gpu   one process per GPU: NODES x GPUS tasks; task K uses local GPU
               SLURM_LOCALID (JAX_LOCAL_DEVICE_IDS), all of its node's GPUs stay visible
  --mode=node  one process per node, driving all GPUS of it (JAX_LOCAL_DEVICE_IDS=0,..)
Every task gets JAX_PROCESS_ID from SLURM_PROCID, JAX_NUM_PROCESSES from SLURM_NTASKS
and JAX_COORDINATOR_ADDRESS = the first host of SLURM_JOB_NODELIST (process 0's node)
with a port derived from the job id, then runs `python -m launch multihost`. srun's
--kill-on-bad-exit stops every task when one fails; one log per task. The job is
--requeue-able: a requeued or resubmitted job resumes from its workdir.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys

from launch import target as target_lib
from models.errors import UserError

DESCRIPTION = __doc__
MODES = ("gpu", "node")
# Like JAX's own SLURM detection: a port in [61440, 65535] that differs between jobs.
JOB_PORT = "$((SLURM_JOB_ID % 4096 + 61440))"


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--nodes", type=int, default=1)
  parser.add_argument("--gpus-per-node", type=int, default=8)
  parser.add_argument("--mode", choices=MODES, default="gpu",
                      help="gpu: one process per GPU (default); node: one per node")
  parser.add_argument("--job-name", default="nas")
  parser.add_argument("--time", default="24:00:00", help="sbatch --time")
  parser.add_argument("--partition", default="")
  parser.add_argument("--account", default="")
  parser.add_argument("--cpus-per-task", type=int, default=0, help="0: the cluster's default")
  parser.add_argument("--port", type=int, default=0, help="coordinator port (0: from the job id)")
  parser.add_argument("--log-dir", default=os.path.join("runs", "slurm"))
  parser.add_argument("--python", default=os.path.join(target_lib.REPO_ROOT, ".venv", "bin",
                                                       "python"))
  parser.add_argument("--script", default="", help="where to write it (default: LOG_DIR/NAME.sbatch)")
  parser.add_argument("--submit", action="store_true", help="run sbatch on the script")


def _validate(options: argparse.Namespace) -> None:
  for name in ("nodes", "gpus_per_node"):
    if getattr(options, name) < 1:
      raise UserError(f"slurm: --{name.replace('_', '-')} must be >= 1")
  if not re.fullmatch(r"[\w.-]+", options.job_name):
    raise UserError(f"slurm: --job-name={options.job_name!r}: letters, digits, . _ - only")
  if options.cpus_per_task < 0 or not 0 <= options.port < 65536:
    raise UserError("slurm: --cpus-per-task must be >= 0 and --port in 0..65535")


def sbatch_header(options: argparse.Namespace, log_dir: str) -> list[str]:
  tasks = options.gpus_per_node if options.mode == "gpu" else 1
  lines = [f"--job-name={options.job_name}", f"--nodes={options.nodes}",
           f"--ntasks-per-node={tasks}", f"--gpus-per-node={options.gpus_per_node}",
           f"--time={options.time}", f"--output={log_dir}/%x-%j.out", "--requeue"]
  lines += [f"--cpus-per-task={options.cpus_per_task}"] * bool(options.cpus_per_task)
  lines += [f"--partition={options.partition}"] * bool(options.partition)
  lines += [f"--account={options.account}"] * bool(options.account)
  return [f"#SBATCH {line}" for line in lines]


def task_script(options: argparse.Namespace, target: target_lib.Target) -> list[str]:
  """What each task runs (its SLURM_* variables differ; evaluated per task)."""
  devices = ("$SLURM_LOCALID" if options.mode == "gpu"
             else ",".join(map(str, range(options.gpus_per_node))))
  command = shlex.join(["-m", "launch", "multihost", "--", *target.words])
  return ['export JAX_PROCESS_ID="$SLURM_PROCID" JAX_NUM_PROCESSES="$SLURM_NTASKS"',
          f'export JAX_LOCAL_DEVICE_IDS="{devices}"',
          f'exec "$NAS_PYTHON" {command}']


def render(options: argparse.Namespace, target: target_lib.Target) -> str:
  log_dir = os.path.abspath(options.log_dir)
  port = str(options.port) if options.port else JOB_PORT
  lines = ["#!/bin/bash", *sbatch_header(options, log_dir),
           f"# Written by `python -m launch slurm` ({options.nodes} nodes x "
           f"{options.gpus_per_node} GPUs, one process per {options.mode}).",
           "set -euo pipefail",
           f"cd {shlex.quote(target_lib.REPO_ROOT)}",
           f"mkdir -p {shlex.quote(log_dir)}",
           f"export NAS_PYTHON={shlex.quote(options.python)}",
           "# Process 0 runs on the first node of the job and hosts the coordinator.",
           'coordinator_host="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
           f'export JAX_COORDINATOR_ADDRESS="$coordinator_host:{port}"',
           "read -r -d '' task <<'TASK' || true", *task_script(options, target), "TASK",
           f"srun --kill-on-bad-exit=1 --output={shlex.quote(log_dir)}/%x-%j-task%t.log "
           'bash -c "$task"']
  return "\n".join(lines) + "\n"


def run(options: argparse.Namespace, target: target_lib.Target | None) -> int:
  target = target_lib.required(target, "slurm")
  _validate(options)
  script = options.script or os.path.join(options.log_dir, f"{options.job_name}.sbatch")
  os.makedirs(os.path.dirname(os.path.abspath(script)), exist_ok=True)
  os.makedirs(options.log_dir, exist_ok=True)  # sbatch opens --output before the script runs
  with open(script, "w") as f:
    f.write(render(options, target))
  os.chmod(script, 0o755)
  print(f"[launch] wrote {script}", file=sys.stderr)
  if not options.submit:
    print(f"[launch] submit with: sbatch {shlex.quote(script)}", file=sys.stderr)
    return 0
  if shutil.which("sbatch") is None:
    raise UserError("slurm --submit: sbatch not found on PATH (the script is written)")
  return subprocess.call(["sbatch", script])
