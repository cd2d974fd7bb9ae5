"""Stateless image augmentation: every random choice is a function of a seed tensor.

A `seed` is an int32/int64 tensor of shape [2]; the pipeline derives it from
(run seed, epoch, position in epoch), so a resumed run replays the same stream.
"""
from __future__ import annotations

import tensorflow as tf

# ImageNet eval: resize so the centre crop covers 87.5% of the shorter side.
CENTER_CROP_FRACTION = 0.875


def _seeds(seed: tf.Tensor, n: int) -> list[tf.Tensor]:
  return list(tf.unstack(tf.random.experimental.stateless_split(seed, n)))


def pad_crop_flip(image: tf.Tensor, seed: tf.Tensor, *, size: int, pad: int = 4) -> tf.Tensor:
  """CIFAR: zero-pad `pad` pixels, random `size` crop, random horizontal flip."""
  crop_seed, flip_seed = _seeds(seed, 2)
  image = tf.image.resize_with_crop_or_pad(image, size + 2 * pad, size + 2 * pad)
  image = tf.image.stateless_random_crop(image, [size, size, image.shape[-1]], crop_seed)
  return tf.image.stateless_random_flip_left_right(image, flip_seed)


def cutout(image: tf.Tensor, seed: tf.Tensor, *, length: int) -> tf.Tensor:
  """Zeroes a `length` square centred uniformly in the image (clipped at borders)."""
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  centre = tf.random.stateless_uniform([2], seed, minval=0, maxval=tf.int32.max, dtype=tf.int32)
  cy, cx = centre[0] % h, centre[1] % w
  ys, xs = tf.range(h)[:, None], tf.range(w)[None, :]
  half = length // 2
  top, left = cy - half, cx - half
  inside = (ys >= top) & (ys < top + length) & (xs >= left) & (xs < left + length)
  return image * tf.cast(~inside, image.dtype)[..., None]


def inception_crop_flip(image: tf.Tensor, seed: tf.Tensor, *, size: int) -> tf.Tensor:
  """ImageNet: random area 8-100%, aspect 3/4-4/3 crop, resized to `size`, random flip."""
  box_seed, flip_seed = _seeds(seed, 2)
  begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image), tf.zeros([0, 0, 4], tf.float32), seed=box_seed,
      area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10,
      use_image_if_no_bounding_boxes=True)
  image = tf.slice(image, begin, crop_size)
  image = tf.image.resize(image, [size, size], method="bicubic")
  return tf.image.stateless_random_flip_left_right(image, flip_seed)


def center_crop(image: tf.Tensor, *, size: int) -> tf.Tensor:
  """ImageNet eval: resize the shorter side to size / 0.875, crop the centre `size`."""
  h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
  scale = size / CENTER_CROP_FRACTION / tf.minimum(h, w)
  new_hw = tf.cast(tf.round(tf.stack([h, w]) * scale), tf.int32)
  image = tf.image.resize(image, new_hw, method="bicubic")
  return tf.image.resize_with_crop_or_pad(image, size, size)


def resize_if_needed(image: tf.Tensor, *, size: int) -> tf.Tensor:
  if image.shape[0] == size and image.shape[1] == size:
    return image
  return tf.image.resize(image, [size, size], method="bilinear")
