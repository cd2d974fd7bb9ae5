"""The training stream does not depend on how many processes read it."""
from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest

from experiments.data import pipeline


@pytest.fixture(scope="module")
def builder():
  return pipeline.open_dataset("shapes32")


def _batches(builder, monkeypatch, *, processes: int, index: int, start_step: int, steps: int):
  monkeypatch.setattr(jax, "process_count", lambda: processes)
  monkeypatch.setattr(jax, "process_index", lambda: index)
  preprocess = pipeline.make_preprocess("shapes32", "cifar", 32, 8)  # random crops and cutout
  stream = pipeline.train_batches(builder, "train[:320]", global_batch_size=32,
                                  preprocess=preprocess, seed=3, start_step=start_step,
                                  shuffle_buffer=320)
  return list(itertools.islice(stream, steps))


@pytest.mark.parametrize("start_step", [0, 7])  # 7: a resumed stream that crosses an epoch
def test_two_processes_together_see_the_single_process_batches(builder, monkeypatch, start_step):
  single = _batches(builder, monkeypatch, processes=1, index=0, start_step=start_step, steps=5)
  parts = [_batches(builder, monkeypatch, processes=2, index=i, start_step=start_step, steps=5)
           for i in range(2)]
  assert pipeline.steps_per_epoch(builder, "train[:320]", 32) == 10
  for step, whole in enumerate(single):
    first, second = parts[0][step], parts[1][step]
    assert first["image"].shape == (16, 32, 32, 3)
    for key in ("image", "label"):
      np.testing.assert_array_equal(np.concatenate([first[key], second[key]]), whole[key])
    assert not np.array_equal(first["image"], second["image"])
