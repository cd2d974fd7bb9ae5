"""The command a launcher runs: an `experiments.*` CLI module and its flags, unchanged.

Checked without importing anything (so bad input fails in milliseconds, before JAX
loads): the name must be a dotted `experiments.` module whose file exists in this
repository.
"""
from __future__ import annotations

import dataclasses
import os
import re
import runpy
import shlex
import sys
from typing import Sequence

from models.errors import UserError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "experiments"
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
EXAMPLE = "-- experiments.train --config=experiments/configs/train_cifar.py --workdir=runs/x"


@dataclasses.dataclass(frozen=True)
class Target:
  module: str
  args: tuple[str, ...] = ()

  @property
  def words(self) -> list[str]:
    """The command as the launcher's own command line ends: module, then its flags."""
    return [self.module, *self.args]

  def argv(self, python: str = sys.executable) -> list[str]:
    return [python, "-m", self.module, *self.args]

  def shell(self, python: str) -> str:
    return shlex.join(self.argv(python))

  def run_here(self) -> None:
    """Runs the module as `python -m` would, in this process (after a distributed init)."""
    sys.argv = [self.module, *self.args]
    runpy.run_module(self.module, run_name="__main__", alter_sys=True)


def parse(words: Sequence[str]) -> Target:
  if not words:
    raise UserError(f"no command to run: end the line with {EXAMPLE}")
  module, *args = words
  if not _DOTTED.match(module) or module.split(".")[0] != PACKAGE:
    raise UserError(f"{module!r} is not an {PACKAGE}.* module (e.g. {PACKAGE}.train, "
                    f"{PACKAGE}.search); the command after `--` is a module and its flags")
  if not module_exists(module):
    raise UserError(f"no module {module!r} in {REPO_ROOT}")
  return Target(module, tuple(args))


def module_exists(module: str) -> bool:
  path = os.path.join(REPO_ROOT, *module.split("."))
  return os.path.isfile(path + ".py") or os.path.isfile(os.path.join(path, "__main__.py"))


def required(target: Target | None, where: str) -> Target:
  if target is None:
    raise UserError(f"{where}: no command to run: end the line with {EXAMPLE}")
  return target
