"""Multi-host start-up: call `initialize()` before anything touches a device.

One process runs per host; together they form one JAX runtime whose `data` mesh
axis spans every device of every host (`experiments.parallel.make_mesh`). Each
process reads its own slice of every split (`tfds.split_for_jax_process`) and
feeds `global_batch / process_count` examples per step; only process 0 writes
TensorBoard logs, `metrics.json` and configs (orbax coordinates checkpoints).

Environment read here:
  JAX_COORDINATOR_ADDRESS  host:port of process 0's coordinator (e.g. 10.0.0.1:1234)
  JAX_NUM_PROCESSES        number of processes (hosts) in the job
  JAX_PROCESS_ID           this process's rank, 0 .. JAX_NUM_PROCESSES - 1
  JAX_LOCAL_DEVICE_IDS     optional comma-separated local device ids this process owns
With none of them set, `jax.distributed.initialize()` is still called on Cloud TPU
pod slices and under SLURM (`SLURM_JOB_ID`), where JAX detects the cluster itself;
otherwise the run stays single-process.

  JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=$RANK \\
      python -m launch.multihost --config=experiments/configs/train_cifar.py --workdir=DIR
"""
from __future__ import annotations

import os
import sys
from typing import Mapping

ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def cluster_kind(environ: Mapping[str, str] = os.environ) -> str | None:
  """"env", "tpu" or "slurm" when this process is part of a multi-process job, else None."""
  if any(environ.get(name) for name in ENV_VARS):
    return "env"
  if environ.get("TPU_WORKER_HOSTNAMES") or environ.get("CLOUD_TPU_TASK_ID"):
    return "tpu"
  if environ.get("SLURM_JOB_ID") and int(environ.get("SLURM_NTASKS", "1")) > 1:
    return "slurm"
  return None


def initialize(environ: Mapping[str, str] = os.environ) -> bool:
  """Joins the multi-process job if there is one; returns whether it did."""
  kind = cluster_kind(environ)
  if kind is None:
    return False
  import jax
  if kind == "env":
    missing = [name for name in ENV_VARS if not environ.get(name)]
    if missing:
      from models.errors import UserError
      raise UserError(f"multi-host: {', '.join(missing)} not set (all of "
                      f"{', '.join(ENV_VARS)} are needed)")
    local = environ.get("JAX_LOCAL_DEVICE_IDS")
    jax.distributed.initialize(
        coordinator_address=environ["JAX_COORDINATOR_ADDRESS"],
        num_processes=int(environ["JAX_NUM_PROCESSES"]),
        process_id=int(environ["JAX_PROCESS_ID"]),
        local_device_ids=[int(i) for i in local.split(",")] if local else None)
  else:
    jax.distributed.initialize()
  return True


def main() -> None:
  """`python -m launch.multihost ARGS`: initialize, then run `experiments.train` with ARGS."""
  from experiments import config_util
  from experiments import train
  from models.errors import exit_on_user_error
  exit_on_user_error(initialize)()
  config_util.run(train.main, sys.argv)


if __name__ == "__main__":
  main()
