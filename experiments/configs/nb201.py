"""Discrete search on an NB201-format table (cheap algorithm work, no training).

  python -m experiments.search --config=experiments/configs/nb201.py --workdir=runs/nb201 \
      --config.strategy.name=rea --config.budget=100 --config.repeats=200

Strategies: random | rea | reinforce | ppo | pnas (options under `strategy.<name>`).
With `benchmark.table` empty a synthetic table in NB201 format is generated
deterministically into the workdir: its numbers have known structure but say
nothing about real networks. Real NB201 results need the real table: a CSV with
column `arch` (NB201 strings) and numeric metric columns, e.g. exported from the
NAS-Bench-201 release, then `--config.benchmark.table=PATH
--config.benchmark.reward=COL --config.benchmark.report=COL`.
Paper setting (Dong & Yang, 2020): reward = 12-epoch validation accuracy, report =
200-epoch test accuracy.
"""
from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.search = "discrete"
  config.space = "nb201"
  config.evaluator = "tabular"
  config.seed = 0
  config.budget = 100           # trials per search
  config.time_budget_s = 0.0    # 0: no time limit
  config.batch_size = 1         # proposals asked before any is told
  config.repeats = 1            # > 1: independent searches, summary.json
  config.top_k = 10

  config.strategy = ml_collections.ConfigDict()
  config.strategy.name = "rea"
  config.strategy.random = ml_collections.ConfigDict()
  config.strategy.rea = ml_collections.ConfigDict(dict(population_size=20, sample_size=5))
  config.strategy.reinforce = ml_collections.ConfigDict(dict(batch_size=10, learning_rate=0.01))
  config.strategy.ppo = ml_collections.ConfigDict(dict(batch_size=10, learning_rate=0.01))
  config.strategy.pnas = ml_collections.ConfigDict(dict(beam_size=8))

  config.benchmark = ml_collections.ConfigDict()
  config.benchmark.table = ""           # "": synthetic table in the workdir
  config.benchmark.reward = "valid_acc_12"
  config.benchmark.report = "test_acc_200"
  config.benchmark.delay_s = 0.0        # seconds added per lookup (crash-recovery tests)
  config.benchmark.log = ""             # a file that gets one line per evaluation
  return config.lock()
