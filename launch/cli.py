"""`python -m launch SUBCOMMAND [options] -- experiments.MODULE [flags]`.

The part after `--` is any `experiments.*` CLI exactly as it would run alone, e.g.

  python -m launch local --devices=4 -- experiments.train --config=... --workdir=runs/x
  python -m launch multihost -- experiments.train ...     (one process of a multi-host job)
  python -m launch tpu up --name=nas --zone=us-central2-b --accelerator=v4-32 -- experiments.train ...
  python -m launch slurm --nodes=2 --gpus-per-node=8 -- experiments.train ...

A subcommand is one module with `DESCRIPTION`, `add_arguments(parser)` and
`run(options, target)`; adding one (a Ray cluster, say) is one module plus its
entry in SUBCOMMANDS. Nothing here imports JAX: bad input fails within milliseconds
with one line and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from launch import local, multihost, slurm, target as target_lib, tpu
from models.errors import UserError, exit_on_user_error

SUBCOMMANDS = {"local": local, "multihost": multihost, "tpu": tpu, "slurm": slurm}


class _Parser(argparse.ArgumentParser):
  """Argument mistakes are user errors: one line, exit 2 (argparse would print usage)."""

  def error(self, message: str):
    raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="python -m launch", description=__doc__,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
  for name, module in SUBCOMMANDS.items():
    summary = module.DESCRIPTION.splitlines()[0].split(": ", 1)[-1]
    sub = commands.add_parser(name, help=summary,
                              description=module.DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(sub)
  return parser


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """(launcher options, command after the first `--`)."""
  argv = list(argv)
  if "--" not in argv:
    stray = [word for word in argv if word.startswith(target_lib.PACKAGE + ".")]
    if stray:
      raise UserError(f"put `--` before the command {stray[0]!r} "
                      f"(e.g. python -m launch local {target_lib.EXAMPLE})")
    return argv, []
  cut = argv.index("--")
  return argv[:cut], argv[cut + 1:]


def run(argv: Sequence[str]) -> int:
  ours, command = split_command(argv)
  options = build_parser().parse_args(ours)
  target = target_lib.parse(command) if command else None
  return SUBCOMMANDS[options.subcommand].run(options, target) or 0


def main(argv: Sequence[str] | None = None) -> None:
  code = exit_on_user_error(run)(sys.argv[1:] if argv is None else argv)
  sys.exit(code)
