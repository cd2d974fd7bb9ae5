"""Train a classifier; the default is a small DARTS-V2 network on the embedded dataset.

  python -m experiments.train --config=experiments/configs/train_cifar.py --workdir=runs/small

Embedded `shapes32` data (10 classes, 10k/2k/2k images of 32x32), a 5-cell, 8-filter
DARTS-V2 network (37k parameters), 3 epochs: 80.4 % test accuracy (a logistic
regression on pixels reaches about 14 %). Measured 20 min wall on a 2-core CPU that
other jobs kept at a load average of 8 (the run got about a third of one core).
Real data and published sizes are overrides away, e.g. CIFAR-10 with DARTS-V2 at
its paper size (20 cells, 36 filters; the full recipe is `darts_cifar10_eval.py`):

  python -m experiments.train --config=experiments/configs/train_cifar.py \\
      --config.data.name=cifar10 --config.model_overrides.layers=20 \\
      --config.model_overrides.filters=36 --workdir=runs/darts_v2

`--config.genotype=cell.json` trains any genotype file in the `cifar` skeleton
(NB201 cells in the `nb201` skeleton, sized by `nb201_overrides`).
"""
from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.model = "darts_v2_cifar"  # a name from models.zoo.catalog.model_names()
  config.genotype = ""             # a genotype file; overrides `model`'s cell
  config.model_overrides = ml_collections.ConfigDict(
      dict(layers=5, filters=8, aux_head=False, dropout=0.0))
  config.nb201_overrides = ml_collections.ConfigDict(dict(channels=16, cells_per_stage=5))
  config.cross_replica_bn = False  # False: per-device BatchNorm statistics (pmap-era recipes)
  # True: the cell is data (`models.networks.anycell`), so every genotype of the space reuses one
  # compiled program; the proxy-training children of a search turn this on.
  config.genotype_as_input = False
  config.compute_dtype = "float32"  # or "bfloat16"

  config.data = ml_collections.ConfigDict()
  config.data.name = "shapes32"    # any TFDS image-classification dataset
  config.data.data_dir = ""        # TFDS data_dir; empty: $TFDS_DATA_DIR or TFDS's default
  config.data.train_split = "train"  # TFDS split syntax, e.g. "train[:5000]"
  config.data.validation_fraction = 0.0  # > 0: evaluate on this held-out tail of train_split
  config.data.eval_split = "test"
  config.data.augment = "cifar"    # cifar (pad 4, crop, flip) | inception | none
  config.data.image_size = 32
  config.data.cutout = 0           # cutout square side; 0 disables
  config.data.shuffle_buffer = 16_384

  config.batch_size = 64           # global, over all devices
  config.eval_batch_size = 200
  config.num_epochs = 3.0

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "sgd"    # sgd | rmsprop | adamw
  config.optimizer.learning_rate = 0.05
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 3e-4
  config.optimizer.grad_clip_norm = 5.0  # 0 disables
  config.optimizer.schedule = "cosine"   # cosine | exponential | constant
  config.optimizer.warmup_epochs = 0.0
  config.optimizer.end_learning_rate = 0.0
  config.optimizer.decay_rate = 0.97      # exponential: factor every `decay_epochs`
  config.optimizer.decay_epochs = 2.0
  config.optimizer.rmsprop_decay = 0.9
  config.optimizer.rmsprop_epsilon = 1.0

  config.label_smoothing = 0.0
  config.aux_weight = 0.0          # auxiliary-head loss weight (needs aux_head=True)
  config.drop_path_rate = 0.0      # final rate; grows linearly from 0 over training

  config.log_every = "50 steps"    # periods: "N steps" or "X epochs"; "0" never
  config.eval_every = "2 epochs"
  config.checkpoint_every = "1 epoch"
  config.keep_checkpoints = 2
  config.init_checkpoint = ""      # orbax checkpoint of model params, used when workdir has none
  return config.lock()
