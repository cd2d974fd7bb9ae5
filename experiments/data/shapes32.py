"""TFDS builder of the embedded dataset `shapes32` (nothing is downloaded).

Importing this module registers the builder, so `tfds.builder("shapes32")` works;
`download_and_prepare()` generates it deterministically in a few seconds.
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from experiments.data import shapes32_generator

# (examples, generator seed) per split; distinct seeds keep the splits disjoint.
SPLITS = {"train": (10_000, 1), "validation": (2_000, 2), "test": (2_000, 3)}


class Shapes32(tfds.core.GeneratorBasedBuilder):
  """32x32 RGB images in 10 classes defined by texture and outline structure."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}

  def _info(self) -> tfds.core.DatasetInfo:
    size = shapes32_generator.IMAGE_SIZE
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 3)),
            "label": tfds.features.ClassLabel(names=shapes32_generator.CLASS_NAMES),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {name: self._generate_examples(n, seed) for name, (n, seed) in SPLITS.items()}

  def _generate_examples(self, num_examples: int, seed: int):
    images, labels = shapes32_generator.generate(num_examples, seed)
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": image, "label": int(label)}
