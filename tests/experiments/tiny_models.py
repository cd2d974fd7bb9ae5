"""Tiny NNX classifiers with the model-library call signature, for trainer tests."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class TinyCNN(nnx.Module):
  """conv3x3 -> (BatchNorm) -> relu -> global mean -> dense; optional aux head."""

  def __init__(self, num_classes: int = 10, *, channels: int = 8, batch_norm: bool = False,
               bn_axis_name: str | None = None, rngs: nnx.Rngs):
    self.conv = nnx.Conv(3, channels, (3, 3), rngs=rngs)
    self.bn = (nnx.BatchNorm(channels, axis_name=bn_axis_name, momentum=0.9, rngs=rngs)
               if batch_norm else None)
    self.head = nnx.Linear(channels, num_classes, rngs=rngs)
    self.aux = nnx.Linear(channels, num_classes, rngs=rngs)

  def __call__(self, x, *, train: bool = False, key: jax.Array | None = None,
               drop_path_rate: float = 0.0, return_aux: bool = False):
    h = self.conv(x)
    if self.bn is not None:
      h = self.bn(h, use_running_average=not train)
    h = jax.nn.relu(h)
    if train and key is not None:
      keep = 1.0 - drop_path_rate
      h = h * jax.random.bernoulli(key, keep, h.shape[:1] + (1, 1, 1)) / keep
    features = jnp.mean(h, axis=(1, 2))
    logits = self.head(features)
    if return_aux:
      return logits, self.aux(features)
    return logits
