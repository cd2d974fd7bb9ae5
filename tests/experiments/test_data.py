"""The embedded dataset, augmentation, and the deterministic, per-process pipelines."""
from __future__ import annotations

import jax
import numpy as np
import pytest
import tensorflow as tf

from experiments.data import augment, pipeline, shapes32, shapes32_generator
from models.errors import UserError


@pytest.fixture(scope="module")
def builder():
  return pipeline.open_dataset("shapes32")


@pytest.fixture(scope="module")
def preprocess():
  return pipeline.make_preprocess("shapes32", "cifar", 32, 16)


def test_generator_is_deterministic_balanced_and_colour_blind():
  images, labels = shapes32_generator.generate(500, seed=7)
  again, labels_again = shapes32_generator.generate(500, seed=7)
  other, _ = shapes32_generator.generate(500, seed=8)
  np.testing.assert_array_equal(images, again)
  np.testing.assert_array_equal(labels, labels_again)
  assert not np.array_equal(images, other)
  assert images.shape == (500, 32, 32, 3) and images.dtype == np.uint8
  assert np.bincount(labels).tolist() == [50] * 10


def test_mean_colour_does_not_predict_the_class():
  images, labels = shapes32_generator.generate(2000, seed=11)
  colour = images.reshape(len(images), -1, 3).mean(axis=1)
  centroids = np.stack([colour[:1000][labels[:1000] == c].mean(0) for c in range(10)])
  predicted = np.argmin(((colour[1000:, None] - centroids[None]) ** 2).sum(-1), axis=1)
  assert np.mean(predicted == labels[1000:]) < 0.2  # chance is 0.1


def test_builder_splits(builder):
  sizes = {name: builder.info.splits[name].num_examples for name in shapes32.SPLITS}
  assert sizes == {"train": 10_000, "validation": 2_000, "test": 2_000}
  assert pipeline.num_classes(builder) == 10


def test_train_stream_is_a_function_of_seed_and_step(builder, preprocess):
  stream = lambda seed, start: pipeline.train_batches(
      builder, "train[:640]", global_batch_size=64, preprocess=preprocess, seed=seed,
      start_step=start, shuffle_buffer=1000)
  full = [b for _, b in zip(range(14), stream(0, 0))]   # crosses the 10-step epoch boundary
  resumed = [b for _, b in zip(range(6), stream(0, 8))]
  for a, b in zip(full[8:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  # A new epoch reshuffles, and another seed gives another stream.
  assert not np.array_equal(full[0]["label"], full[10]["label"])
  other = next(stream(1, 0))
  assert not np.array_equal(full[0]["label"], other["label"])
  assert full[0]["image"].shape == (64, 32, 32, 3) and full[0]["image"].dtype == np.float32


def test_validation_fraction_carves_disjoint_tail(builder):
  train, held_out = pipeline.carve_splits(builder, "train", 0.1, "test")
  sizes = pipeline.split_size(builder, train), pipeline.split_size(builder, held_out)
  assert sizes == (9000, 1000)
  assert pipeline.carve_splits(builder, "train[:64]", 0.0, "validation") == (
      "train[:64]", "validation")
  with pytest.raises(UserError, match="config.data.eval_split"):
    pipeline.carve_splits(builder, "train", 0.0, "dev")


def test_eval_covers_split_once_with_padding(builder, preprocess):
  batches = list(pipeline.eval_batches(builder, "test[:130]", global_batch_size=64,
                                       preprocess=preprocess))
  assert len(batches) == 3
  assert [int(b["mask"].sum()) for b in batches] == [64, 64, 2]
  labels = np.concatenate([b["label"][b["mask"] > 0] for b in batches])
  reference = [int(ex["label"])
               for ex in builder.as_dataset(split="test[:130]").as_numpy_iterator()]
  assert labels.tolist() == reference


def test_processes_read_disjoint_parts(builder, preprocess, monkeypatch):
  seen = []
  for index in range(2):
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda i=index: i)
    batches = list(pipeline.eval_batches(builder, "test[:100]", global_batch_size=40,
                                         preprocess=preprocess))
    assert len(batches) == 3 and all(len(b["label"]) == 20 for b in batches)
    seen.append(np.concatenate([b["image"][b["mask"] > 0] for b in batches]))
  assert len(seen[0]) + len(seen[1]) == 100
  flat = [x.tobytes() for part in seen for x in part]
  assert len(set(flat)) == 100


def test_cutout_zeroes_a_clipped_square():
  image = tf.ones([32, 32, 3])
  out = augment.cutout(image, tf.constant([3, 4]), length=16).numpy()
  zero_rows, zero_cols = np.nonzero(out[..., 0] == 0)
  height = zero_rows.max() - zero_rows.min() + 1
  width = zero_cols.max() - zero_cols.min() + 1
  assert 8 <= height <= 16 and 8 <= width <= 16
  assert len(zero_rows) == height * width
  assert np.all(out[..., 0] == out[..., 2])


def test_pad_crop_flip_and_center_crop_shapes_and_content():
  image = tf.reshape(tf.range(32 * 32 * 3, dtype=tf.float32), [32, 32, 3])
  out = augment.pad_crop_flip(image, tf.constant([1, 2]), size=32).numpy()
  assert out.shape == (32, 32, 3)
  nonzero = out[out != 0]
  assert set(nonzero.tolist()) <= set(image.numpy().ravel().tolist())
  big = tf.zeros([300, 400, 3])
  assert augment.center_crop(big, size=224).shape == (224, 224, 3)
  assert augment.inception_crop_flip(big, tf.constant([0, 1]), size=224).shape == (224, 224, 3)


def test_unknown_dataset_and_augmentation_are_user_errors():
  with pytest.raises(UserError, match="unknown TFDS dataset 'no_such_data'"):
    pipeline.open_dataset("no_such_data")
  with pytest.raises(UserError, match="config.data.augment"):
    pipeline.make_preprocess("cifar10", "mixup", 32, 0)
