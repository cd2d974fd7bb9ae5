"""Several commands started together, one log file each; the first failure stops them all.

Used for the processes of a local multi-process job and for the per-worker ssh
sessions of a TPU slice. A member that exits non-zero makes the group send SIGTERM
to the others (a training run saves a checkpoint on SIGTERM), then SIGKILL after
`grace_s`; the group's exit code is the first failure's.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from typing import Callable, Mapping, Sequence

TAIL_LINES = 20


@dataclasses.dataclass(frozen=True)
class Member:
  name: str                              # "process 1", "worker 3"
  argv: Sequence[str]
  log: str                               # stdout and stderr go here
  env: Mapping[str, str] | None = None   # None: inherit


def run_group(members: Sequence[Member], *, grace_s: float = 30.0, poll_s: float = 0.2,
              on_failure: Callable[[], None] | None = None) -> int:
  """Runs every member to the end, or until one fails; returns 0 or the first failure's code."""
  procs = [_start(member) for member in members]
  try:
    running = dict(enumerate(procs))
    while running:
      for index, proc in list(running.items()):
        code = proc.poll()
        if code is None:
          continue
        del running[index]
        if code != 0:
          _report(members[index], code)
          _stop([running[i] for i in running], grace_s)
          if on_failure is not None:
            on_failure()
          return code
      time.sleep(poll_s)
    return 0
  except BaseException:  # Ctrl-C or a bug here: leave no orphans
    _stop([p for p in procs if p.poll() is None], grace_s)
    raise


def _start(member: Member) -> subprocess.Popen:
  os.makedirs(os.path.dirname(os.path.abspath(member.log)), exist_ok=True)
  with open(member.log, "ab") as log:
    # A session of its own, so that stopping it reaches the children it starts.
    return subprocess.Popen(list(member.argv), stdout=log, stderr=subprocess.STDOUT,
                            env=None if member.env is None else dict(member.env),
                            start_new_session=True)


def _stop(procs: Sequence[subprocess.Popen], grace_s: float) -> None:
  for proc in procs:
    _signal(proc, signal.SIGTERM)
  deadline = time.monotonic() + grace_s
  for proc in procs:
    try:
      proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      _signal(proc, signal.SIGKILL)
      proc.wait()


def _signal(proc: subprocess.Popen, sig: int) -> None:
  try:
    os.killpg(proc.pid, sig)
  except ProcessLookupError:
    pass


def _report(member: Member, code: int) -> None:
  print(f"[launch] {member.name} exited with code {code}; stopping the others "
        f"(log: {member.log})", file=sys.stderr)
  try:
    with open(member.log, errors="replace") as f:
      tail = f.readlines()[-TAIL_LINES:]
  except OSError:
    return
  for line in tail:
    print(f"[{member.name}] {line.rstrip()}", file=sys.stderr)
