"""NASNet-A Large at full size (88.9M parameters, 331px) against Keras NASNetLarge.

The main suite checks Large's structure on a narrow copy (tests/models/
test_weights_keras.py); this full-size run belongs to the reference suite
(`launch/test_optional.sh` sets NAS_REFERENCE_SUITE=1).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from flax import nnx

if not os.environ.get("NAS_REFERENCE_SUITE"):
  pytest.skip("reference suite only (NAS_REFERENCE_SUITE=1)", allow_module_level=True)

keras = pytest.importorskip("keras")

from models.zoo import weights  # noqa: E402
from tests.models.test_weights_keras import _randomize  # noqa: E402


def test_nasnet_large_logits_match_keras():
  reference = keras.applications.NASNetLarge(weights=None, classifier_activation=None)
  _randomize(reference, 0)
  images = np.random.default_rng(1).uniform(-1, 1, (2, 331, 331, 3)).astype(np.float32)
  ref = np.asarray(reference(images, training=False))
  model = weights.from_keras(reference, "nasnet_a_large")
  ours = np.asarray(nnx.jit(lambda m, x: m(x, train=False))(model, images))
  error = float(np.max(np.abs(ours - ref)))
  print(f"nasnet_a_large: max|ours - keras| = {error:.3g}, max|keras| = {np.max(np.abs(ref)):.3g}")
  assert error <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))
