"""DARTS (Liu et al., 2019) CIFAR-10 evaluation recipe, DARTS-V2 cell by default.

  python -m experiments.train --config=experiments/configs/darts_cifar10_eval.py \\
      --workdir=runs/darts_v2_cifar10

Paper settings: 20 cells, 36 initial channels, auxiliary head (weight 0.4),
600 epochs, batch 96, SGD momentum 0.9, learning rate 0.025 cosine-annealed to 0,
weight decay 3e-4, gradient-norm clip 5, cutout 16, drop path 0.2 (ramped
linearly), 50k training images; reported 2.76 +- 0.09 % test error, 3.3M params.
A searched cell: `--config.genotype=runs/search/genotype.json`.
"""
from __future__ import annotations

import ml_collections

from experiments.configs import train_cifar


def get_config() -> ml_collections.ConfigDict:
  config = train_cifar.get_config()
  with config.unlocked():
    config.model = "darts_v2_cifar"
    config.model_overrides = ml_collections.ConfigDict(
        dict(layers=20, filters=36, aux_head=True, dropout=0.0))
    config.data.name = "cifar10"
    config.data.cutout = 16
    config.batch_size = 96
    config.eval_batch_size = 200
    config.num_epochs = 600.0
    config.optimizer.learning_rate = 0.025
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 3e-4
    config.optimizer.grad_clip_norm = 5.0
    config.optimizer.end_learning_rate = 0.0
    config.aux_weight = 0.4
    config.drop_path_rate = 0.2
    config.log_every = "100 steps"
    config.eval_every = "10 epochs"
    config.checkpoint_every = "1 epoch"
  return config.lock()
