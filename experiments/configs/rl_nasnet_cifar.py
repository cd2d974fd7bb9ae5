"""NASNet search: an RL controller over NASNet cells, children scored by proxy training.

  python -m experiments.search --config=experiments/configs/rl_nasnet_cifar.py --workdir=runs/nasnet

The default is CPU-sized: PPO on the LSTM controller, a handful of children, each
a tiny `cifar`-skeleton network trained one epoch on part of the embedded
`shapes32` dataset (10% held out for the reward). `--config.strategy.name=reinforce`
uses Zoph & Le's REINFORCE instead. Paper settings (Zoph et al., 2018): B=5 blocks,
13 ops, PPO, 20,000 children each trained 20 epochs on CIFAR-10 with 5,000
training images held out for the reward, 500 GPUs for 4 days.
"""
from __future__ import annotations

import ml_collections

from experiments.configs import evolution_cifar


def get_config() -> ml_collections.ConfigDict:
  config = evolution_cifar.get_config()
  with config.unlocked():
    config.space = "nasnet"
    config.budget = 20
    config.batch_size = 5       # children trained between two controller updates
    config.strategy = ml_collections.ConfigDict()
    config.strategy.name = "ppo"
    config.strategy.ppo = ml_collections.ConfigDict(dict(batch_size=5, learning_rate=0.01))
    config.strategy.reinforce = ml_collections.ConfigDict(dict(batch_size=5, learning_rate=0.01))
  return config
