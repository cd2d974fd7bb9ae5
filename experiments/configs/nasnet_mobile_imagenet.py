"""NASNet-A Mobile (4@1056) on ImageNet at 224 px (Zoph et al., 2018).

  python -m experiments.train --config=experiments/configs/nasnet_mobile_imagenet.py \\
      --workdir=runs/nasnet_mobile

Paper / TF-slim settings: synchronous replicas, RMSProp (decay 0.9, epsilon 1.0),
learning rate decayed exponentially by 0.97 every 2.4 epochs, label smoothing 0.1,
auxiliary head weight 0.4, weight decay 4e-5, dropout 0.5 before the classifier,
no drop path for the mobile model, Inception-style crops; reported 74.0 % top-1
with 5.3M parameters and 564M mult-adds. The learning rate (0.04 for a global
batch of 1024 here) and epoch count (~312, i.e. 250k steps of TF-slim's batch)
are this repository's reading of TF-slim's released hyper-parameters, scaled to
the batch; check them against your hardware's batch size.
"""
from __future__ import annotations

import ml_collections

from experiments.configs import train_cifar


def get_config() -> ml_collections.ConfigDict:
  config = train_cifar.get_config()
  with config.unlocked():
    config.model = "nasnet_a_mobile"
    config.model_overrides = ml_collections.ConfigDict(dict(aux_head=True, dropout=0.5))
    config.data.name = "imagenet2012"
    config.data.eval_split = "validation"
    config.data.augment = "inception"
    config.data.image_size = 224
    config.data.cutout = 0
    config.batch_size = 1024
    config.eval_batch_size = 1000
    config.num_epochs = 312.0
    config.optimizer.name = "rmsprop"
    config.optimizer.learning_rate = 0.04
    config.optimizer.momentum = 0.9
    config.optimizer.rmsprop_decay = 0.9
    config.optimizer.rmsprop_epsilon = 1.0
    config.optimizer.weight_decay = 4e-5
    config.optimizer.grad_clip_norm = 0.0
    config.optimizer.schedule = "exponential"
    config.optimizer.decay_rate = 0.97
    config.optimizer.decay_epochs = 2.4
    config.label_smoothing = 0.1
    config.aux_weight = 0.4
    config.drop_path_rate = 0.0
    config.log_every = "100 steps"
    config.eval_every = "5 epochs"
    config.checkpoint_every = "2000 steps"
    config.keep_checkpoints = 5
  return config.lock()
