"""Proxy training: score a child cell by training a small network for a few epochs.

Each trial trains in its own sub-workdir (`children/trial_NNNNN`), so a search
killed mid-child resumes that child from its last checkpoint. The reward is the
accuracy on a validation set carved from the training split; the test split is
never looked at during search.
"""
from __future__ import annotations

import math
import os

import ml_collections

from models.genotypes import genotype as gt

from models.genotypes import files as genotype_files
from models.errors import UserError
from nas.evaluators.base import Evaluation, Evaluator

VALIDATION_ACCURACY = "validation_accuracy"


class ProxyEvaluator(Evaluator):
  """Trains each child with `experiments.trainer.train_and_evaluate(train_config, dir)`."""

  def __init__(self, train_config: ml_collections.ConfigDict, workdir: str):
    if train_config.data.validation_fraction <= 0:
      raise UserError("proxy.data.validation_fraction: must be > 0 (the reward is the accuracy "
                      "on validation images carved from the training split)")
    self.train_config = train_config
    self.workdir = workdir

  report_metric = VALIDATION_ACCURACY

  def evaluate(self, genotype: gt.Genotype, trial_id: int) -> Evaluation:
    from experiments import trainer  # the training stack is only needed to train
    child_dir = os.path.join(self.workdir, f"trial_{trial_id:05d}")
    os.makedirs(child_dir, exist_ok=True)
    genotype_path = os.path.join(child_dir, "genotype.json")
    genotype_files.save(genotype, genotype_path)
    config = ml_collections.ConfigDict(self.train_config.to_dict())
    config.genotype = genotype_path
    # A preempted child raises `Preempted` after saving its checkpoint: the search
    # stops too and the trial runs again (resuming the child) on the next start.
    metrics = trainer.train_and_evaluate(config, child_dir)
    out = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    diverged = not math.isfinite(out.get("validation_loss", 0.0))
    return Evaluation(math.nan if diverged else out[VALIDATION_ACCURACY], out)


def child_config(num_epochs: float = 0.25, filters: int = 8, layers: int = 5,
                 validation_fraction: float = 0.1) -> ml_collections.ConfigDict:
  """A CPU-sized child recipe: `train_cifar.py` on the embedded dataset, shrunk.

  `layers` cells in the `cifar` skeleton with `filters` filters, trained for
  `num_epochs` (a fraction is fine) on the training split minus its held-out tail.
  Five layers are one normal cell per stack around the two reduction cells (with
  two, the child would hold no normal cell and the normal cell would go unscored).
  Children are `genotype_as_input` networks (`models.networks.anycell`): the first child of a
  search compiles the train step, every later one reuses it (a static child compiles
  for about as long as it trains). Their training equals the static child's.
  """
  from experiments.configs import train_cifar
  config = train_cifar.get_config()
  config.model_overrides.layers = layers
  config.model_overrides.filters = filters
  config.data.validation_fraction = validation_fraction
  config.data.augment = "none"
  config.num_epochs = num_epochs
  config.batch_size = 64
  config.eval_every = "0"
  config.checkpoint_every = "10 steps"
  config.log_every = "10 steps"
  config.genotype_as_input = True  # every child reuses one compiled train step
  return config
