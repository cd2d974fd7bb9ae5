"""DARTS (Liu et al., 2019) cell search on CIFAR-10, second order.

    python -m experiments.search --config=experiments/configs/darts_cifar10.py:paper \
        --workdir=/tmp/darts_cifar10
    python -m experiments.train --config.genotype=/tmp/darts_cifar10/genotype.json ...

`:paper` gives the paper's search: 8 cells of 16 initial channels, 50 epochs,
batch 64, half of the CIFAR-10 training set for α and half for the weights;
weights: SGD lr 0.025 cosine-annealed (per epoch) to 0.001, momentum 0.9, weight
decay 3e-4, gradient norm clipped at 5; α: Adam lr 3e-4, β = (0.5, 0.999),
weight decay 1e-3; unrolled (second-order) hypergradient. The default (no
argument) is a tiny run on the embedded `shapes32` dataset that finishes in a few
minutes on a laptop CPU.
"""
from __future__ import annotations

import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  paper = arg == "paper"
  c = ml_collections.ConfigDict()
  c.search = "darts"
  c.seed = 2

  c.data = ml_collections.ConfigDict()
  c.data.name = "cifar10" if paper else "shapes32"
  c.data.data_dir = ""             # TFDS data dir; empty: the TFDS default
  c.data.augment = "cifar"
  c.data.image_size = 32 if paper else 16
  c.data.arch_fraction = 0.5       # the tail of `train` that trains α
  c.data.num_examples = 0 if paper else 512  # 0: the whole train split
  c.data.cutout = 0
  c.data.shuffle_buffer = 16_384

  c.model = ml_collections.ConfigDict()
  c.model.space = "darts"          # op set: darts, nb201 or pnas
  c.model.layers = 8 if paper else 3
  c.model.channels = 16 if paper else 4
  c.model.steps = 4
  c.model.multiplier = 4
  c.model.stem_multiplier = 3
  c.model.cross_replica_bn = False
  c.model.alpha_init_scale = 1e-3  # α starts as init_scale * N(0, 1)
  # Depthwise-conv implementation: "lax" (XLA's grouped conv), "shifted" or "" (backend
  # default). On CPU the default "shifted" path makes the supernet's compile explode.
  c.model.depthwise = "lax"

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 0.025
  c.optim.lr_min = 0.001
  c.optim.momentum = 0.9
  c.optim.weight_decay = 3e-4
  c.optim.grad_clip = 5.0

  c.arch = ml_collections.ConfigDict()
  c.arch.lr = 3e-4 if paper else 3e-3
  c.arch.b1 = 0.5
  c.arch.b2 = 0.999
  c.arch.weight_decay = 1e-3
  c.arch.order = 2                 # 1: first-order DARTS; 2: unrolled
  c.arch.hvp = "exact"             # or "finite_difference" (the paper's approximation)

  c.epochs = 50 if paper else 2
  c.batch_size = 64 if paper else 32
  c.log_every = "50 steps" if paper else "4 steps"
  c.checkpoint_every = "1 epoch"
  return c.lock()
