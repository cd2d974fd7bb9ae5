"""Train a classifier: `python -m experiments.train --config=CONFIG.py --workdir=DIR`.

`--config.model=NAME` picks a zoo network; `--config.genotype=PATH.json` builds a
genotype file in the `cifar` skeleton (`nb201` for NAS-Bench-201 cells). Any key
can be overridden with `--config.a.b=value`. A workdir holding a checkpoint resumes.
"""
from __future__ import annotations

import json
import sys

from absl import flags
from ml_collections import config_flags

from experiments import config_util
from models.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs, metrics.")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _CONFIG.value is None:
    raise UserError("--config: required (e.g. --config=experiments/configs/train_cifar.py)")
  from experiments import trainer  # heavy imports after the flags are known to be good
  metrics = trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
  config_util.run(main)
