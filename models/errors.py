"""Errors a user can cause, and the one way every CLI reports them."""
from __future__ import annotations

import functools
import sys
from typing import Callable


class UserError(Exception):
  """Bad input from the user (config, genotype, table, path): one line, exit 2."""


class Preempted(Exception):
  """The process was asked to stop (SIGTERM) and saved its state; rerun to resume.

  Raised by a run that stopped early on purpose, so that callers (a search loop
  evaluating a child, a CLI) can stop too without recording a failure.
  """


PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM: the scheduler should restart the job


def exit_on_user_error(main: Callable[..., object]) -> Callable[..., object]:
  """Wraps a CLI `main`: a UserError (a GenotypeError is one) prints one line and exits 2."""

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
  return wrapped
