"""Errors a user can cause, and the one way every CLI reports them."""
from __future__ import annotations

import functools
import sys
from typing import Callable


class UserError(Exception):
  """Bad input from the user (config, genotype, table, path): one line, exit 2."""


def exit_on_user_error(main: Callable[..., object]) -> Callable[..., object]:
  """Wraps a CLI `main`: a UserError (or GenotypeError) prints one line and exits 2."""
  from models.genotype import GenotypeError

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except (UserError, GenotypeError) as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
  return wrapped
