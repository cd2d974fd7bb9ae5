"""`multihost`: join a multi-process JAX job, then run the command in this process.

Start one such process per host (or per GPU); together they form one JAX runtime
whose `data` mesh axis spans every device of every process. Each process feeds its
rows of every global batch; only process 0 writes logs, configs and metrics, and
orbax coordinates the checkpoints.

Environment (the first three are read by JAX itself):
  JAX_COORDINATOR_ADDRESS       host:port of the coordinator, which process 0 starts
  JAX_LOCAL_DEVICE_IDS          comma-separated ids of the local devices this process
                                uses (e.g. one GPU per process: its SLURM_LOCALID)
  JAX_COORDINATOR_BIND_ADDRESS  where process 0's coordinator listens (default [::]:PORT)
  JAX_NUM_PROCESSES             number of processes in the job       (passed by us)
  JAX_PROCESS_ID                this process's rank, 0 .. N-1        (passed by us)
  JAX_COORDINATOR_PORT          with auto-detection only: the coordinator's port
  JAX_NUM_CPU_DEVICES           CPU devices per process (CPU jobs; a JAX config value)
  JAX_CPU_COLLECTIVES_IMPLEMENTATION  CPU cross-process collectives: gloo (default) | mpi

`--cluster=auto` (default) picks, in this order: `env` when ADDRESS, NUM_PROCESSES or
PROCESS_ID is set (all three are then required, and JAX's cluster detection is off,
so a job inside a SLURM allocation is not re-read); `slurm` inside
a SLURM step with more than one task; `ompi` under Open MPI's mpirun; `tpu` when a
Cloud TPU pod's worker variables are set (GKE). Otherwise the run stays one process.
On GCE TPU VMs JAX finds the slice through the metadata server: `--cluster=tpu`
(what `launch tpu` passes) asks it to.

  JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=$RANK \\
      python -m launch multihost -- experiments.train --config=... --workdir=DIR
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping

from launch import target as target_lib
from models.errors import UserError

DESCRIPTION = __doc__
ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
CLUSTERS = ("auto", "env", "slurm", "ompi", "tpu", "none")
# Our cluster names -> JAX's `cluster_detection_method` (None: try every TPU kind).
_DETECTION = {"env": "deactivate", "slurm": "slurm", "ompi": "ompi", "tpu": None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--cluster", choices=CLUSTERS, default="auto",
                      help="how the job is described (default: detect, see above)")
  parser.add_argument("--heartbeat-timeout", type=int, default=100, metavar="S",
                      help="seconds without a heartbeat before a process counts as dead")
  parser.add_argument("--init-timeout", type=int, default=300, metavar="S",
                      help="seconds to wait for every process to join")


def cluster_kind(environ: Mapping[str, str] = os.environ) -> str | None:
  """"env", "slurm", "ompi" or "tpu" when this process is part of a multi-process job, else None."""
  if any(environ.get(name) for name in ENV_VARS):
    return "env"
  if environ.get("SLURM_JOB_ID") and int(environ.get("SLURM_NTASKS", "1")) > 1:
    return "slurm"
  if environ.get("OMPI_MCA_orte_hnp_uri") and int(environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
    return "ompi"
  if environ.get("TPU_WORKER_HOSTNAMES") or environ.get("CLOUD_TPU_TASK_ID"):
    return "tpu"
  return None


def initialize(environ: Mapping[str, str] = os.environ, *, cluster: str = "auto",
               heartbeat_timeout: int = 100, init_timeout: int = 300) -> bool:
  """Joins the multi-process job if there is one; returns whether it did."""
  kind = cluster_kind(environ) if cluster == "auto" else (None if cluster == "none" else cluster)
  if kind is None:
    return False
  explicit = _explicit_arguments(environ) if kind == "env" else {}
  import jax  # after validation: bad input never waits for JAX to load
  jax.distributed.initialize(**explicit, cluster_detection_method=_DETECTION[kind],
                             initialization_timeout=init_timeout,
                             heartbeat_timeout_seconds=heartbeat_timeout)
  return True


def _explicit_arguments(environ: Mapping[str, str]) -> dict:
  missing = [name for name in ENV_VARS if not environ.get(name)]
  if missing:
    raise UserError(f"multihost: {', '.join(missing)} not set (all of "
                    f"{', '.join(ENV_VARS)} are needed)")
  try:
    count, rank = int(environ["JAX_NUM_PROCESSES"]), int(environ["JAX_PROCESS_ID"])
  except ValueError:
    raise UserError("multihost: JAX_NUM_PROCESSES and JAX_PROCESS_ID must be integers") from None
  if not 0 <= rank < count:
    raise UserError(f"multihost: JAX_PROCESS_ID={rank} is not in 0..{count - 1}")
  if ":" not in environ["JAX_COORDINATOR_ADDRESS"]:
    raise UserError("multihost: JAX_COORDINATOR_ADDRESS must be host:port, got "
                    f"{environ['JAX_COORDINATOR_ADDRESS']!r}")
  return {"coordinator_address": environ["JAX_COORDINATOR_ADDRESS"], "num_processes": count,
          "process_id": rank}


def run(options: argparse.Namespace, target: target_lib.Target | None) -> int:
  target = target_lib.required(target, "multihost")
  joined = initialize(cluster=options.cluster, heartbeat_timeout=options.heartbeat_timeout,
                      init_timeout=options.init_timeout)
  if joined:
    print(f"[launch] joined the multi-process job ({options.cluster}); running {target.module}",
          file=sys.stderr)
  target.run_here()
  return 0


if __name__ == "__main__":  # `python -m launch.multihost ...` = `python -m launch multihost ...`
  from launch import cli
  cli.main(["multihost", *sys.argv[1:]])
