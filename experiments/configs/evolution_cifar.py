"""Regularized evolution over NASNet cells, children scored by proxy training.

  python -m experiments.search --config=experiments/configs/evolution_cifar.py --workdir=runs/rea

The default is CPU-sized: NASNet-space cells trained in a tiny `cifar` skeleton
for one epoch on part of the embedded `shapes32` dataset, 10% of it held out for
the reward (`experiments.proxy_evaluator.child_config`). Paper settings (Real et
al., 2019, AmoebaNet-A): population 100, sample 25, 20,000 children, each trained
25 epochs on CIFAR-10 at N=3, F=24, reward = held-out validation accuracy; their
space is NASNet's structure with eight ops and add-only blocks, e.g.
`--config.space=pnas` for that op set. Real data: `--config.proxy.data.name=cifar10`.
"""
from __future__ import annotations

import ml_collections

from experiments.proxy_evaluator import child_config


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.search = "discrete"
  config.space = "nasnet"
  config.num_blocks = 5         # blocks per cell
  config.evaluator = "proxy"
  config.seed = 0
  config.budget = 20            # children
  config.time_budget_s = 0.0    # 0: no time limit
  config.batch_size = 1         # proposals asked before any is told
  config.repeats = 1
  config.top_k = 5
  config.strategy = ml_collections.ConfigDict()
  config.strategy.name = "rea"
  config.strategy.rea = ml_collections.ConfigDict(dict(population_size=8, sample_size=3))
  config.proxy = child_config()
  return config.lock()
