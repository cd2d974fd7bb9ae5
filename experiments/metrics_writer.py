"""Scalars to TensorBoard and final metrics to `metrics.json`, from process 0 only."""
from __future__ import annotations

import json
import os
from typing import Mapping

import jax


class MetricsWriter:
  """Writes on process 0; a no-op elsewhere so callers need no `if`."""

  def __init__(self, workdir: str, *, subdir: str = "tensorboard"):
    self.workdir = workdir
    self.active = jax.process_index() == 0
    self._summary = None
    if self.active:
      import tensorflow as tf
      self._summary = tf.summary.create_file_writer(os.path.join(workdir, subdir))

  def scalars(self, step: int, values: Mapping[str, float], prefix: str = "") -> None:
    if not self.active:
      return
    import tensorflow as tf
    with self._summary.as_default():
      for name, value in values.items():
        tf.summary.scalar(prefix + name, float(value), step=step)
    self._summary.flush()

  def final(self, metrics: Mapping[str, object], name: str = "metrics.json") -> None:
    if not self.active:
      return
    path = os.path.join(self.workdir, name)
    with open(path + ".tmp", "w") as f:
      json.dump(dict(metrics), f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)

  def close(self) -> None:
    if self._summary is not None:
      self._summary.close()
