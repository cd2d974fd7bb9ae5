"""TFDS + tf.data input pipelines for image classification.

Any TFDS image-classification dataset works by name (`cifar10`, `cifar100`,
`imagenet2012`, ...); `shapes32` is the embedded offline dataset. The training
stream is a pure function of (seed, step): each epoch shuffles with a seed
derived from (seed, epoch) and augments each example with a seed derived from
(seed, epoch, position), so a run resumed at step s sees exactly the batches an
uninterrupted run would. The stream is also independent of the process count:
every process walks the same shuffled order of the whole split and decodes and
augments only its own rows of each global batch (`global_batch / processes`
consecutive rows), so 2 hosts of 2 devices train on exactly the batches 1 host of
4 devices would. The price is that every process reads (not decodes) every
record. Evaluation reads a disjoint slice per process (`tfds.split_for_jax_process`);
its sums do not depend on the order.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from experiments.data import augment
from experiments.data import shapes32  # noqa: F401  (registers the builder)
from models.errors import UserError

AUGMENTATIONS = ("cifar", "inception", "none")
_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Per-channel (mean, std) of the training pixels in [0, 1]; other datasets use 0.5 / 0.5.
CHANNEL_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet2012": _IMAGENET_STATS,
    "imagenet_resized": _IMAGENET_STATS,
}
Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """How examples become model inputs: float32 NHWC, normalized per channel."""
  augment: str = "cifar"
  image_size: int = 32
  cutout: int = 0
  mean: tuple[float, ...] = (0.5, 0.5, 0.5)
  std: tuple[float, ...] = (0.5, 0.5, 0.5)

  def train(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    crop_seed, cutout_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.cast(image, tf.float32) / 255.0
    if self.augment == "cifar":
      image = augment.resize_if_needed(image, size=self.image_size)
      image = augment.pad_crop_flip(image, crop_seed, size=self.image_size)
    elif self.augment == "inception":
      image = augment.inception_crop_flip(image, crop_seed, size=self.image_size)
    else:
      image = augment.resize_if_needed(image, size=self.image_size)
    image = self._normalize(image)
    if self.cutout > 0:
      image = augment.cutout(image, cutout_seed, length=self.cutout)
    return image

  def eval(self, image: tf.Tensor) -> tf.Tensor:
    image = tf.cast(image, tf.float32) / 255.0
    if self.augment == "inception":
      image = augment.center_crop(image, size=self.image_size)
    else:
      image = augment.resize_if_needed(image, size=self.image_size)
    return self._normalize(image)

  def _normalize(self, image: tf.Tensor) -> tf.Tensor:
    return (image - tf.constant(self.mean)) / tf.constant(self.std)


def make_preprocess(dataset: str, augment_name: str, image_size: int, cutout: int) -> Preprocess:
  if augment_name not in AUGMENTATIONS:
    raise UserError(f"config.data.augment: unknown augmentation {augment_name!r}; "
                    f"choose one of {', '.join(AUGMENTATIONS)}")
  mean, std = CHANNEL_STATS.get(dataset.split(":")[0].split("/")[0],
                                ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
  return Preprocess(augment_name, image_size, cutout, mean, std)


def open_dataset(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """The prepared TFDS builder of `name` (generated or downloaded on first use)."""
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except tfds.core.registered.DatasetNotFoundError:
    raise UserError(f"config.data.name: unknown TFDS dataset {name!r}") from None
  if not _features_ok(builder):
    raise UserError(f"config.data.name: {name!r} is not an image-classification dataset "
                    "(needs an 'image' feature and a ClassLabel 'label')")
  try:
    builder.download_and_prepare()
  except Exception as e:  # network, manual-download and permission errors alike
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise UserError(f"config.data.name: cannot prepare {name!r} in {builder.data_dir}: "
                    f"{first_line}") from None
  return builder


def _features_ok(builder: tfds.core.DatasetBuilder) -> bool:
  features = builder.info.features
  return ("image" in features and "label" in features and
          isinstance(features["label"], tfds.features.ClassLabel))


def num_classes(builder: tfds.core.DatasetBuilder) -> int:
  return builder.info.features["label"].num_classes


def carve_splits(builder: tfds.core.DatasetBuilder, train_split: str, validation_fraction: float,
                 eval_split: str) -> tuple[str, str]:
  """(train split, eval split) in TFDS split syntax (`"train"`, `"train[:512]"`).

  A validation fraction > 0 holds out the tail of `train_split` (a whole split) and
  evaluates on it instead of `eval_split`.
  """
  for where, split in (("train_split", train_split), ("eval_split", eval_split)):
    try:
      split_size(builder, split)
    except Exception:
      raise UserError(f"config.data.{where}: {builder.name!r} has no split {split!r} "
                      f"(has {', '.join(builder.info.splits)})") from None
  if not 0.0 <= validation_fraction < 1.0:
    raise UserError(f"config.data.validation_fraction: {validation_fraction} not in [0, 1)")
  if validation_fraction == 0.0:
    return train_split, eval_split
  if train_split not in builder.info.splits:
    raise UserError(f"config.data.validation_fraction: needs a whole train split, "
                    f"not {train_split!r}")
  n = split_size(builder, train_split)
  n_train = n - int(round(n * validation_fraction))
  return f"{train_split}[:{n_train}]", f"{train_split}[{n_train}:]"


def split_size(builder: tfds.core.DatasetBuilder, split: str) -> int:
  return builder.info.splits[split].num_examples


def local_batch_size(global_batch_size: int) -> int:
  import jax
  processes, devices = jax.process_count(), jax.device_count()
  if global_batch_size % devices:
    raise UserError(f"batch size {global_batch_size} is not divisible by the "
                    f"{devices} devices")
  return global_batch_size // processes


def steps_per_epoch(builder: tfds.core.DatasetBuilder, split: str, global_batch_size: int) -> int:
  local_batch_size(global_batch_size)  # checks divisibility by the devices
  steps = split_size(builder, split) // global_batch_size
  if steps == 0:
    raise UserError(f"batch size {global_batch_size} is larger than split {split!r} "
                    f"({split_size(builder, split)} examples)")
  return steps


def _mix(seed: int, epoch: int) -> int:
  return (seed * 1_000_003 + epoch) % (2 ** 31 - 1)


def train_batches(builder: tfds.core.DatasetBuilder, split: str, *, global_batch_size: int,
                  preprocess: Preprocess, seed: int, start_step: int = 0,
                  shuffle_buffer: int = 16_384) -> Iterator[Batch]:
  """Endless stream of this process's rows of each global batch, from `start_step` on."""
  import jax
  per_epoch = steps_per_epoch(builder, split, global_batch_size)
  local = local_batch_size(global_batch_size)
  rows = _ProcessRows(first=jax.process_index() * local, count=local, period=global_batch_size)
  epoch, skip = divmod(start_step, per_epoch)
  while True:
    ds = _epoch_dataset(builder, split, preprocess, seed, epoch, shuffle_buffer,
                        num_examples=per_epoch * global_batch_size,
                        skip_examples=skip * global_batch_size, rows=rows)
    ds = ds.batch(local, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    yield from tfds.as_numpy(ds)
    epoch, skip = epoch + 1, 0


@dataclasses.dataclass(frozen=True)
class _ProcessRows:
  """Rows `first .. first + count - 1` of every `period` consecutive examples."""
  first: int
  count: int
  period: int

  def keep(self, position: tf.Tensor) -> tf.Tensor:
    row = position % self.period
    return (row >= self.first) & (row < self.first + self.count)


def _epoch_dataset(builder, split, preprocess: Preprocess, seed: int, epoch: int,
                   shuffle_buffer: int, *, num_examples: int, skip_examples: int,
                   rows: _ProcessRows) -> tf.data.Dataset:
  read_config = tfds.ReadConfig(shuffle_seed=_mix(seed, epoch))
  ds = builder.as_dataset(split=split, shuffle_files=True, read_config=read_config,
                          decoders={"image": tfds.decode.SkipDecoding()})
  ds = ds.shuffle(shuffle_buffer, seed=_mix(seed, epoch), reshuffle_each_iteration=False)
  ds = ds.enumerate().take(num_examples).skip(skip_examples)
  if rows.count < rows.period:
    ds = ds.filter(lambda position, example: rows.keep(position))
  epoch_seed = tf.constant([seed, epoch], tf.int64)
  image_feature = builder.info.features["image"]

  def prepare(position, example):
    # The seed follows the example's place in the global batch, not in this process's part.
    element_seed = tf.random.experimental.stateless_fold_in(epoch_seed, position)
    image = image_feature.decode_example(example["image"])
    return {"image": preprocess.train(image, element_seed),
            "label": tf.cast(example["label"], tf.int32)}

  return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def eval_batches(builder: tfds.core.DatasetBuilder, split: str, *, global_batch_size: int,
                 preprocess: Preprocess) -> Iterator[Batch]:
  """One pass over `split`; the last batches are padded and carry `mask` = 0 for padding.

  Every process yields the same number of batches, so collectives stay in step.
  """
  import jax
  local = local_batch_size(global_batch_size)
  largest_part = math.ceil(split_size(builder, split) / jax.process_count())
  num_batches = math.ceil(largest_part / local)
  ds = builder.as_dataset(split=tfds.split_for_jax_process(split), shuffle_files=False)
  ds = ds.map(lambda ex: {"image": preprocess.eval(ex["image"]),
                          "label": tf.cast(ex["label"], tf.int32)},
              num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(local).prefetch(tf.data.AUTOTUNE)
  produced = 0
  template = None
  for batch in tfds.as_numpy(ds):
    template = batch
    produced += 1
    yield _pad(batch, local)
  for _ in range(num_batches - produced):
    yield _pad({k: v[:0] for k, v in template.items()}, local)


def _pad(batch: Batch, size: int) -> Batch:
  n = len(batch["label"])
  out = {k: np.concatenate([v, np.zeros((size - n,) + v.shape[1:], v.dtype)])
         for k, v in batch.items()}
  out["mask"] = (np.arange(size) < n).astype(np.float32)
  return out

