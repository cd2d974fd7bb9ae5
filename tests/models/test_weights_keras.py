"""NASNet-A weight import: logits parity with Keras, the .h5 path, the convert CLI, errors.

The Keras references are built with random weights (nothing downloads); BatchNorm
statistics and the classifier bias are randomized too, so a transposed or swapped
tensor shows in the logits.
"""
from __future__ import annotations

import os
import subprocess
import sys

import h5py
import jax
import numpy as np
import pytest
from flax import nnx

keras = pytest.importorskip("keras")
from keras.src.applications import nasnet as keras_nasnet  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402

from models.zoo import weights  # noqa: E402
from models.errors import UserError  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _randomize(model, seed: int) -> None:
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    values = layer.get_weights()
    if type(layer).__name__ == "BatchNormalization":
      shape = values[0].shape
      layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.2, shape),
                         rng.normal(0, 0.2, shape), rng.uniform(0.5, 1.5, shape)])
    elif type(layer).__name__ == "Dense":
      layer.set_weights([values[0], rng.normal(0, 0.5, values[1].shape)])


def _save_legacy_h5(model, path: str) -> str:
  """The layout the published NASNet-mobile.h5 / NASNet-large.h5 files use."""
  with h5py.File(path, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)
  return path


def _images(size: int) -> np.ndarray:
  return np.random.default_rng(1).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)


@nnx.jit
def _logits(model, images):
  return model(images, train=False)


def _assert_logits_match(model, reference, images) -> float:
  ours = np.asarray(_logits(model, images))
  ref = np.asarray(reference(images, training=False))
  error = float(np.max(np.abs(ours - ref)))
  assert error <= 1e-4 * max(1.0, float(np.max(np.abs(ref)))), error
  return error


def _params_equal(a, b) -> bool:
  leaves_a = jax.tree.leaves(nnx.state(a))
  leaves_b = jax.tree.leaves(nnx.state(b))
  return len(leaves_a) == len(leaves_b) and all(
      np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b))


@pytest.fixture(scope="module")
def mobile(tmp_path_factory):
  reference = keras.applications.NASNetMobile(weights=None, classifier_activation=None)
  _randomize(reference, 0)
  path = _save_legacy_h5(reference, str(tmp_path_factory.mktemp("keras") / "NASNet-mobile.h5"))
  return reference, path, weights.from_keras(reference, "nasnet_a_mobile")


def test_nasnet_mobile_logits_match_keras(mobile):
  reference, _, model = mobile
  _assert_logits_match(model, reference, _images(224))


def test_h5_path_loads_the_same_weights(mobile):
  _, path, model = mobile
  assert _params_equal(weights.from_keras(path, "nasnet_a_mobile"), model)


def test_keras3_weights_file_is_a_user_error(tmp_path):
  path = str(tmp_path / "mobile.weights.h5")
  with h5py.File(path, "w") as f:
    f.create_group("layers/conv2d/vars")
  with pytest.raises(UserError, match="Keras 3 .weights.h5"):
    weights.from_keras(path, "nasnet_a_mobile")


def test_nasnet_large_structure_matches_keras():
  # What sets NASNetLarge apart (skip_reduction, a wider stem) at a fraction of its size:
  # Keras's NASNet builder with Large's settings, 96 penultimate filters, 2 cells a stack.
  reference = keras_nasnet.NASNet(
      (72, 72, 3), penultimate_filters=96, num_blocks=2, stem_block_filters=12,
      skip_reduction=True, filter_multiplier=2, include_top=True, weights=None,
      input_tensor=None, pooling=None, classes=10, default_size=72,
      classifier_activation=None, name="small_large")
  _randomize(reference, 2)
  model = weights.from_keras(reference, "nasnet_a_large", num_classes=10, filters=4,
                             stem_filters=12, normal_cells=(2, 2, 2))
  _assert_logits_match(model, reference, _images(72))


def test_mobile_weights_into_large_name_the_first_tensor(mobile):
  _, path, _ = mobile
  with pytest.raises(UserError, match=r"'stem_conv1/kernel'.*\(3, 3, 3, 32\).*\(3, 3, 3, 96\)"):
    weights.from_keras(path, "nasnet_a_large")


def test_missing_file_and_unknown_model_are_user_errors(tmp_path):
  with pytest.raises(UserError, match="no weights file"):
    weights.from_keras(str(tmp_path / "absent.h5"), "nasnet_a_mobile")
  with pytest.raises(UserError, match="pnasnet_5_large"):
    weights.from_keras(str(tmp_path / "absent.h5"), "pnasnet_5_large")


def test_convert_writes_what_init_checkpoint_reads(mobile, tmp_path):
  from experiments import checkpointing
  _, path, model = mobile
  weights.main(["convert", "--from", "keras", path, "--model", "nasnet_a_mobile",
                "--out", str(tmp_path / "converted")])
  params = nnx.state(model, nnx.Param)
  restored = checkpointing.load_params(str(tmp_path / "converted" / "params"), params)
  assert jax.tree.structure(restored) == jax.tree.structure(params)
  assert all(np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(restored), jax.tree.leaves(params)))


def test_convert_cli_mismatch_exits_2_with_one_line(mobile, tmp_path):
  _, path, _ = mobile
  result = subprocess.run(
      [sys.executable, "-m", "models.zoo.weights", "convert", "--from", "keras", path,
       "--model", "nasnet_a_large", "--out", str(tmp_path / "out")],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and "stem_conv1/kernel" in lines[0], result.stderr
  assert "Traceback" not in result.stderr
  assert not os.path.exists(tmp_path / "out")


def test_torch_weights_without_torch_are_a_user_error(tmp_path, monkeypatch):
  path = tmp_path / "pnasnet5large.pth"
  path.write_bytes(b"not read")
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
  with pytest.raises(UserError, match="needs torch"):
    weights.from_torch(str(path), "pnasnet_5_large")
