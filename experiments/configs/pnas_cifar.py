"""Progressive NAS: cells grown a block at a time, ranked by a surrogate.

  python -m experiments.search --config=experiments/configs/pnas_cifar.py --workdir=runs/pnas

The default is CPU-sized (a small beam, children a tiny `cifar`-skeleton network
trained one epoch on part of the embedded `shapes32` dataset, 10% held out for the
reward). Paper settings (Liu et al., 2018): B=5 blocks, 8 ops, beam K=256,
children at N=2, F=24 trained 20 epochs on CIFAR-10, 1,160 children in all.
"""
from __future__ import annotations

import ml_collections

from experiments.configs import evolution_cifar


def get_config() -> ml_collections.ConfigDict:
  config = evolution_cifar.get_config()
  with config.unlocked():
    config.space = "pnas"
    config.budget = 12
    config.batch_size = 4        # the beam is trained as one batch of children
    config.strategy = ml_collections.ConfigDict()
    config.strategy.name = "pnas"
    config.strategy.pnas = ml_collections.ConfigDict(dict(
        beam_size=4, max_initial=8, max_expansions=64, surrogate_steps=50))
  return config
