"""`tpu`: run the command on every worker of a Cloud TPU slice, with gcloud.

Actions (`python -m launch tpu ACTION --name=N --zone=Z [...] [-- experiments.X ...]`):
  up       create the slice (unless --existing), copy the repository, install the pinned
           environment, run on all workers; relaunch after a preemption (the run
           resumes from its workdir); delete with --teardown
  create | copy | install | run | logs | stop | delete   one step of `up`
`--dry-run` prints every gcloud command instead of running it (gcloud not needed).

`run` starts one ssh session per worker at once (the same command everywhere; each
worker's output goes to LOG_DIR/worker-K.log) and stops all workers when one exits
non-zero. Each worker also keeps ~/nas-logs/run.log, which `logs` copies back.
A preempted slice loses its disks: give a workdir that outlives it, on a bucket (a
gcsfuse mount on every worker; gs:// paths once the run's workdir handling reads them)
or a shared filesystem.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

from launch import process_group, repo_archive, target as target_lib
from launch import tpu_commands as commands
from launch import tpu_slice
from models.errors import PREEMPTED_EXIT_CODE, UserError

DESCRIPTION = __doc__
ACTIONS = ("up", "create", "copy", "install", "run", "logs", "stop", "delete")
# Describe states after which the slice must be deleted and created again.
LOST_STATES = {"PREEMPTED", "TERMINATED", "SUSPENDED", "SUSPENDING", "FAILED", "NOT_FOUND"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("action", choices=ACTIONS)
  parser.add_argument("--name", required=True, help="TPU (and queued resource) name")
  parser.add_argument("--zone", default="", help="e.g. us-central2-b (required)")
  parser.add_argument("--project", default="", help="default: gcloud's configured project")
  parser.add_argument("--accelerator", default="", help="accelerator type, e.g. v4-32")
  parser.add_argument("--version", default="", help="TPU VM software (default: by generation)")
  parser.add_argument("--queued", action="store_true", help="create through queued resources")
  capacity = parser.add_mutually_exclusive_group()
  capacity.add_argument("--spot", action="store_true", help="Spot capacity (preemptible)")
  capacity.add_argument("--reserved", action="store_true", help="the project's reservation")
  parser.add_argument("--existing", action="store_true", help="up: use the slice as it is")
  parser.add_argument("--teardown", action="store_true", help="up: delete the slice at the end")
  parser.add_argument("--relaunches", type=int, default=3, help="up: after preemptions")
  parser.add_argument("--retries", type=int, default=3, help="attempts of copy and install")
  parser.add_argument("--wait-minutes", type=float, default=120.0,
                      help="how long a queued resource may wait for capacity")
  parser.add_argument("--log-dir", default="", help="default: runs/tpu/NAME")
  parser.add_argument("--dry-run", action="store_true", help="print the gcloud commands only")


class Gcloud:
  """Runs (or, dry, prints) gcloud commands."""

  def __init__(self, dry_run: bool):
    self.dry_run = dry_run
    if not dry_run and shutil.which("gcloud") is None:
      raise UserError("tpu: gcloud not found on PATH (install the Google Cloud CLI; "
                      "--dry-run prints the commands without it)")

  def show(self, argv) -> None:
    print(shlex.join(argv), file=sys.stdout if self.dry_run else sys.stderr, flush=True)

  def note(self, text: str) -> None:
    print(f"# {text}" if self.dry_run else f"[launch] {text}", file=sys.stdout if self.dry_run
          else sys.stderr, flush=True)

  def call(self, argv, *, attempts: int = 1) -> int:
    self.show(argv)
    if self.dry_run:
      return 0
    code = 1
    for attempt in range(1, attempts + 1):
      code = subprocess.call(argv)
      if code == 0:
        break
      if attempt < attempts:
        self.note(f"exit code {code}; retrying ({attempt}/{attempts - 1}) in {5 * attempt} s")
        time.sleep(5 * attempt)
    return code

  def describe(self, argv) -> dict | None:
    """The resource as JSON, or None when it does not exist (or in a dry run)."""
    self.show(argv)
    if self.dry_run:
      return None
    done = subprocess.run(argv, capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else None


def slice_spec(options: argparse.Namespace) -> commands.SliceSpec:
  if not options.zone:
    raise UserError("tpu: --zone is required (e.g. --zone=us-central2-b)")
  if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", options.name):
    raise UserError(f"tpu: --name={options.name!r}: lowercase letters, digits and dashes")
  accelerator = tpu_slice.parse(options.accelerator) if options.accelerator else None
  if accelerator is None and (options.action == "create" or
                              (options.action == "up" and not options.existing)):
    raise UserError(f"tpu {options.action}: --accelerator is required (e.g. v4-32)")
  for name in ("relaunches", "retries"):
    if getattr(options, name) < 0:
      raise UserError(f"tpu: --{name} must be >= 0")
  return commands.SliceSpec(options.name, options.zone, accelerator, options.version,
                            options.project, options.queued, options.spot, options.reserved)


def run(options: argparse.Namespace, target: target_lib.Target | None) -> int:
  spec = slice_spec(options)
  if options.action in ("up", "run"):
    target = target_lib.required(target, f"tpu {options.action}")
  gcloud = Gcloud(options.dry_run)
  log_dir = options.log_dir or os.path.join("runs", "tpu", spec.name)
  steps = {
      "up": lambda: up(gcloud, spec, target, options, log_dir),
      "create": lambda: create(gcloud, spec, options),
      "copy": lambda: copy(gcloud, spec, options, log_dir),
      "install": lambda: install(gcloud, spec, options),
      "run": lambda: run_workers(gcloud, spec, target, log_dir),
      "logs": lambda: fetch_logs(gcloud, spec, log_dir),
      "stop": lambda: gcloud.call(commands.stop(spec)),
      "delete": lambda: gcloud.call(commands.delete(spec)),
  }
  return steps[options.action]()


def up(gcloud: Gcloud, spec, target, options, log_dir: str) -> int:
  code = 0 if options.existing else create(gcloud, spec, options)
  attempt = 0
  while code == 0:
    code = copy(gcloud, spec, options, log_dir) or install(gcloud, spec, options) \
        or run_workers(gcloud, spec, target, log_dir)
    if code == 0 or attempt >= options.relaunches:
      break
    attempt += 1
    lost = slice_state(gcloud, spec) in LOST_STATES
    if lost and spec.accelerator is None:
      gcloud.note("slice lost (preempted); give --accelerator to have it recreated")
    elif lost:
      gcloud.note(f"slice lost (preempted); recreating it, relaunch {attempt}/{options.relaunches}")
      gcloud.call(commands.delete(spec))
      code = create(gcloud, spec, options)
    elif code == PREEMPTED_EXIT_CODE:
      gcloud.note(f"the run was stopped (SIGTERM); relaunch {attempt}/{options.relaunches}")
      code = 0
  if gcloud.dry_run:
    gcloud.note(f"after a preemption: {shlex.join(commands.delete(spec))}, then create, copy, "
                f"install and run again (up to {options.relaunches} times); the run resumes "
                "from its workdir")
  if options.teardown:
    gcloud.call(commands.delete(spec))
  return code


def create(gcloud: Gcloud, spec, options) -> int:
  code = gcloud.call(commands.create(spec))
  if code != 0 or not spec.queued:
    return code  # `tpu-vm create` returns once the slice is READY
  deadline = time.monotonic() + 60 * options.wait_minutes
  while True:  # a queued resource is granted when capacity frees up
    state = _queued_state(gcloud.describe(commands.describe(spec, queued=True)))
    if gcloud.dry_run or state == "ACTIVE":
      return 0
    if state in ("FAILED", "SUSPENDED") or time.monotonic() > deadline:
      gcloud.note(f"queued resource {spec.name} is {state}; giving up")
      return 1
    gcloud.note(f"queued resource {spec.name}: {state}; waiting")
    time.sleep(30)


def _queued_state(resource: dict | None) -> str:
  if resource is None:
    return "NOT_FOUND"
  state = resource.get("state", {})
  return state.get("state", "UNKNOWN") if isinstance(state, dict) else str(state)


def slice_state(gcloud: Gcloud, spec) -> str:
  node = gcloud.describe(commands.describe(spec))
  return "NOT_FOUND" if node is None else str(node.get("state", "UNKNOWN"))


def copy(gcloud: Gcloud, spec, options, log_dir: str) -> int:
  archive = os.path.join(log_dir, "nas-src.tar.gz")
  if gcloud.dry_run:
    gcloud.note(f"pack {target_lib.REPO_ROOT} (git's tracked and unignored files) into {archive}")
  else:
    gcloud.note(f"packed {repo_archive.pack(target_lib.REPO_ROOT, archive)} files into {archive}")
  return gcloud.call(commands.copy_archive(spec, archive), attempts=options.retries) or \
      gcloud.call(commands.unpack(spec), attempts=options.retries)


def install(gcloud: Gcloud, spec, options) -> int:
  return gcloud.call(commands.install(spec, pinned_jax_version()), attempts=options.retries)


def pinned_jax_version() -> str:
  with open(os.path.join(target_lib.REPO_ROOT, "requirements.txt")) as f:
    for line in f:
      if line.startswith("jax=="):
        return line.strip().split("==")[1]
  raise UserError("requirements.txt: no jax== pin")


def worker_count(gcloud: Gcloud, spec) -> int:
  node = None if gcloud.dry_run else gcloud.describe(commands.describe(spec))
  if node and node.get("networkEndpoints"):
    return len(node["networkEndpoints"])
  if spec.accelerator is None:
    raise UserError("tpu run: cannot tell the number of workers; give --accelerator")
  return spec.accelerator.hosts


def run_workers(gcloud: Gcloud, spec, target, log_dir: str) -> int:
  workers = worker_count(gcloud, spec)
  members = [process_group.Member(f"worker {k}", commands.run_on_worker(spec, k, target),
                                  log=os.path.join(log_dir, f"worker-{k}.log"))
             for k in range(workers)]
  gcloud.note(f"{workers} workers at once, one log each in {log_dir}; the first failure "
              "stops the others")
  for member in members:
    gcloud.show(member.argv)
  if gcloud.dry_run:
    return 0
  return process_group.run_group(members, on_failure=lambda: gcloud.call(commands.stop(spec)))


def fetch_logs(gcloud: Gcloud, spec, log_dir: str) -> int:
  if not gcloud.dry_run:
    os.makedirs(log_dir, exist_ok=True)
  codes = [gcloud.call(commands.fetch_log(spec, k, os.path.join(log_dir, f"worker-{k}.remote.log")))
           for k in range(worker_count(gcloud, spec))]
  return max(codes, default=0)
