"""Pixels of the embedded dataset: 10 classes told apart only by structure.

Each image is a textured shape on a cluttered, noisy background. The class fixes
the texture inside the shape (four stripe orientations, checks, rings, dots,
spokes, flat fill, outline only); everything else is random per image: both
colours, the shape (disc or square), its position and size, the texture's
period and phase, the clutter and the noise. Colour and mean statistics
therefore carry no label information, and a random phase makes every texture
average out to flat, so a linear classifier on pixels stays far below a CNN.
"""
from __future__ import annotations

import numpy as np

CLASS_NAMES = ("stripes_0", "stripes_45", "stripes_90", "stripes_135", "checks",
               "rings", "dots", "spokes", "flat", "outline")
IMAGE_SIZE = 32


def generate(num_images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Returns `(images uint8 [n, 32, 32, 3], labels int64 [n])`, a function of `seed`."""
  rng = np.random.default_rng(seed)
  labels = np.arange(num_images) % len(CLASS_NAMES)
  rng.shuffle(labels)
  images = np.stack([_image(rng, int(y)) for y in labels])
  return images, labels.astype(np.int64)


def _image(rng: np.random.Generator, label: int) -> np.ndarray:
  s = IMAGE_SIZE
  yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
  background, foreground, clutter_colour = rng.uniform(0, 1, (3, 3))
  while np.abs(foreground - background).sum() < 0.6:  # keep the texture visible
    foreground = rng.uniform(0, 1, 3)
  img = np.broadcast_to(background, (s, s, 3)).copy()
  for _ in range(rng.integers(2, 5)):
    img = _paint(img, _clutter_mask(rng, yy, xx), clutter_colour * rng.uniform(0.5, 1.0))

  cy, cx = rng.uniform(10, s - 10, 2)
  radius = rng.uniform(7, 12)
  dy, dx = yy - cy, xx - cx
  if rng.random() < 0.5:
    dist = np.sqrt(dy ** 2 + dx ** 2)
  else:
    dist = np.maximum(np.abs(dy), np.abs(dx))
  inside = dist < radius
  texture = _texture(rng, label, dy, dx, radius, inside, dist)
  img = _paint(img, texture, foreground)
  img += rng.normal(0, rng.uniform(0.03, 0.1), img.shape)
  return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _texture(rng, label, dy, dx, radius, inside, dist) -> np.ndarray:
  period = rng.uniform(3.0, 5.5)
  phase = rng.uniform(0, 2 * np.pi)
  jitter = np.deg2rad(rng.uniform(-10, 10))
  if label < 4:
    angle = np.deg2rad(45 * label) + jitter
    u = dx * np.cos(angle) + dy * np.sin(angle)
    pattern = np.sin(2 * np.pi * u / period + phase) > 0
  elif label == 4:
    angle = jitter + rng.choice([0.0, np.pi / 4])
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    pattern = (np.sin(2 * np.pi * u / period + phase) * np.sin(2 * np.pi * v / period)) > 0
  elif label == 5:
    pattern = np.sin(2 * np.pi * np.sqrt(dy ** 2 + dx ** 2) / period + phase) > 0
  elif label == 6:
    u = np.mod(dx + phase, period) - period / 2
    v = np.mod(dy + phase, period) - period / 2
    pattern = u ** 2 + v ** 2 < (period * 0.3) ** 2
  elif label == 7:
    spokes = rng.integers(3, 7)
    pattern = np.sin(spokes * np.arctan2(dy, dx) + phase) > 0
  elif label == 8:
    pattern = np.ones_like(inside)
  else:
    pattern = dist > radius - rng.uniform(1.5, 2.5)
  return inside & pattern


def _clutter_mask(rng, yy, xx) -> np.ndarray:
  y0, x0 = rng.uniform(0, IMAGE_SIZE, 2)
  h, w = rng.uniform(1, 6, 2)
  return (np.abs(yy - y0) < h) & (np.abs(xx - x0) < w)


def _paint(img: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
  return np.where(mask[..., None], colour, img)
