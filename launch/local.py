"""`local`: run the command on this machine: every device, N simulated CPU devices, or N processes.

  python -m launch local -- experiments.train ...                  all devices, one process
  python -m launch local --devices=4 -- experiments.train ...      4 simulated CPU devices
  python -m launch local --processes=2 --devices=2 -- experiments.train ...
      2 JAX processes of 2 CPU devices each, joined by jax.distributed on localhost
      (gloo collectives): a multi-host job in miniature, one log per process.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile

from launch import process_group, target as target_lib
from models.errors import UserError

DESCRIPTION = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--devices", type=int, default=0, metavar="N",
                      help="simulate N CPU devices per process (default: the machine's devices)")
  parser.add_argument("--processes", type=int, default=1, metavar="N",
                      help="start N JAX processes on this machine (default 1)")
  parser.add_argument("--port", type=int, default=0,
                      help="coordinator port with --processes (default: a free one)")
  parser.add_argument("--log-dir", default="",
                      help="one log per process with --processes (default: a new temporary folder)")


def cpu_devices_env(devices: int) -> dict[str, str]:
  """Environment that gives a process `devices` CPU devices (nothing for 0)."""
  if devices == 0:
    return {}
  return {"JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices)}


def use_cpu_devices(devices: int) -> None:
  """Gives this process `devices` CPU devices (before its JAX backend starts)."""
  os.environ.update(cpu_devices_env(devices))
  if devices and "jax" in sys.modules:  # imported already: the environment was read
    import jax
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", devices)


def process_env(rank: int, count: int, port: int, devices: int) -> dict[str, str]:
  """What process `rank` of a `count`-process job on this machine gets (see launch.multihost)."""
  return {**cpu_devices_env(devices), "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
          "JAX_NUM_PROCESSES": str(count), "JAX_PROCESS_ID": str(rank)}


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def run(options: argparse.Namespace, target: target_lib.Target | None) -> int:
  target = target_lib.required(target, "local")
  if options.devices < 0:
    raise UserError(f"local: --devices={options.devices} must be >= 0")
  if options.processes < 1:
    raise UserError(f"local: --processes={options.processes} must be >= 1")
  if options.processes == 1:
    use_cpu_devices(options.devices)
    target.run_here()
    return 0
  port = options.port or free_port()
  log_dir = options.log_dir or tempfile.mkdtemp(prefix="launch-local-")
  members = [process_group.Member(
      name=f"process {rank}",
      argv=[sys.executable, "-m", "launch", "multihost", "--", *target.words],
      log=os.path.join(log_dir, f"process-{rank}.log"),
      env={**os.environ, **process_env(rank, options.processes, port, options.devices),
           "PYTHONPATH": os.pathsep.join(filter(None, [target_lib.REPO_ROOT,
                                                       os.environ.get("PYTHONPATH")]))})
      for rank in range(options.processes)]
  print(f"[launch] {options.processes} processes, coordinator localhost:{port}, logs in {log_dir}",
        file=sys.stderr)
  return process_group.run_group(members)
