"""The exact `gcloud` command lines for a Cloud TPU slice, as argument lists.

Pure functions of a `SliceSpec`: nothing here runs anything, so `--dry-run` and the
tests see precisely what a real launch executes. Flags follow the gcloud reference
of `compute tpus tpu-vm create|describe|scp|ssh|delete` and
`compute tpus queued-resources create|describe|delete`.
"""
from __future__ import annotations

import dataclasses
import shlex

from launch import target as target_lib
from launch import tpu_slice

REMOTE_DIR = "~/nas"                     # the repository on every worker
REMOTE_ARCHIVE = "~/nas-src.tar.gz"
REMOTE_LOG = "~/nas-logs/run.log"        # written by launch/tpu_worker.sh
REMOTE_PID = "~/nas-logs/run.pid"
TPU_VM = ("gcloud", "compute", "tpus", "tpu-vm")
QUEUED = ("gcloud", "compute", "tpus", "queued-resources")


@dataclasses.dataclass(frozen=True)
class SliceSpec:
  name: str
  zone: str
  accelerator: tpu_slice.AcceleratorType | None
  runtime_version: str = ""
  project: str = ""
  queued: bool = False     # ask through the queued-resources API (waits for capacity)
  spot: bool = False
  reserved: bool = False

  def scope(self) -> list[str]:
    return [f"--zone={self.zone}"] + ([f"--project={self.project}"] if self.project else [])


def create(spec: SliceSpec) -> list[str]:
  assert spec.accelerator is not None
  version = spec.runtime_version or spec.accelerator.runtime_version
  capacity = ["--spot"] * spec.spot + ["--reserved"] * spec.reserved
  if spec.queued:
    return [*QUEUED, "create", spec.name, f"--node-id={spec.name}", *spec.scope(),
            f"--accelerator-type={spec.accelerator.name}", f"--runtime-version={version}",
            *capacity]
  return [*TPU_VM, "create", spec.name, *spec.scope(),
          f"--accelerator-type={spec.accelerator.name}", f"--version={version}", *capacity]


def describe(spec: SliceSpec, *, queued: bool = False) -> list[str]:
  group = QUEUED if queued else TPU_VM
  return [*group, "describe", spec.name, *spec.scope(), "--format=json"]


def delete(spec: SliceSpec) -> list[str]:
  if spec.queued:  # --force deletes the slice the request holds, then the request
    return [*QUEUED, "delete", spec.name, *spec.scope(), "--force", "--quiet"]
  return [*TPU_VM, "delete", spec.name, *spec.scope(), "--quiet"]


def ssh(spec: SliceSpec, command: str, *, worker: str = "all") -> list[str]:
  return [*TPU_VM, "ssh", spec.name, *spec.scope(), f"--worker={worker}", f"--command={command}"]


def copy_archive(spec: SliceSpec, archive: str) -> list[str]:
  return [*TPU_VM, "scp", archive, f"{spec.name}:{REMOTE_ARCHIVE}", *spec.scope(), "--worker=all"]


def unpack(spec: SliceSpec) -> list[str]:
  # Over the previous copy, so an installed .venv survives a relaunch.
  return ssh(spec, f"mkdir -p {REMOTE_DIR} && tar -xzf {REMOTE_ARCHIVE} -C {REMOTE_DIR}")


def install(spec: SliceSpec, jax_version: str) -> list[str]:
  """The pinned environment (launch/setup_env.sh) plus libtpu for this JAX version."""
  python = ("command -v python3.11 >/dev/null || "
            "(sudo apt-get update -q && sudo apt-get install -y -q python3.11 python3.11-venv)")
  tpu = f'.venv/bin/python -m pip install -q "jax[tpu]=={jax_version}"'
  return ssh(spec, f"({python}) && cd {REMOTE_DIR} && bash launch/setup_env.sh && {tpu}")


def run_on_worker(spec: SliceSpec, worker: int, target: target_lib.Target) -> list[str]:
  command = " ".join(["bash", f"{REMOTE_DIR}/launch/tpu_worker.sh",
                      *map(shlex.quote, target.words)])
  return ssh(spec, command, worker=str(worker))


def stop(spec: SliceSpec) -> list[str]:
  """SIGTERM to the run on every worker: it checkpoints and exits."""
  return ssh(spec, f"test -f {REMOTE_PID} && kill -TERM $(cat {REMOTE_PID}) 2>/dev/null; true")


def fetch_log(spec: SliceSpec, worker: int, destination: str) -> list[str]:
  return [*TPU_VM, "scp", f"{spec.name}:{REMOTE_LOG}", destination, *spec.scope(),
          f"--worker={worker}"]
