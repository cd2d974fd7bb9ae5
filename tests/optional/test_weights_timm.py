"""PNASNet-5 Large and NASNet-A Large weight import: logits parity with timm.

Optional (torch + timm, `requirements-reference.txt`; run by `launch/test_optional.sh`):
skipped when they cannot be imported. The timm models get random weights, randomized
BatchNorm statistics and classifier bias; nothing downloads. Native 331px inputs.
"""
from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

try:
  import timm
  import torch
except Exception as e:  # a torchvision built for another torch fails with RuntimeError
  pytest.skip(f"timm/torch not importable ({type(e).__name__}: {str(e).splitlines()[0]})",
              allow_module_level=True)

from models import ops  # noqa: E402
from models.zoo import weights
from models.errors import UserError  # noqa: E402

TIMM_NAMES = {"pnasnet_5_large": "pnasnet5large", "nasnet_a_large": "nasnetalarge"}


def _timm_model(timm_name: str, seed: int) -> torch.nn.Module:
  torch.manual_seed(seed)
  model = timm.create_model(timm_name, pretrained=False).eval()
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5)
        m.bias.normal_(0, 0.2)
        m.running_mean.normal_(0, 0.2)
        m.running_var.uniform_(0.5, 1.5)
    model.last_linear.bias.normal_(0, 0.5)
  return model


@pytest.fixture(scope="module")
def images() -> np.ndarray:
  return np.random.default_rng(1).uniform(-1, 1, (2, 331, 331, 3)).astype(np.float32)


def _check_parity(name: str, images: np.ndarray, tmp_path) -> None:
  reference = _timm_model(TIMM_NAMES[name], seed=0)
  with torch.no_grad():
    ref = reference(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
  path = str(tmp_path / f"{name}.pth")
  torch.save(reference.state_dict(), path)
  model = weights.from_torch(path, name)
  ours = np.asarray(nnx.jit(lambda m, x: m(x, train=False))(model, images))
  error = float(np.max(np.abs(ours - ref)))
  print(f"{name}: max|ours - timm| = {error:.3g}, max|timm| = {np.max(np.abs(ref)):.3g}")
  assert error <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))


def test_pnasnet_5_large_logits_match_timm(images, tmp_path):
  _check_parity("pnasnet_5_large", images, tmp_path)


def test_nasnet_a_large_logits_match_timm(images, tmp_path):
  _check_parity("nasnet_a_large", images, tmp_path)


def test_state_dict_and_safetensors_load_the_same_weights(tmp_path):
  import jax
  from safetensors.torch import save_file
  reference = _timm_model("pnasnet5large", seed=3)
  state = reference.state_dict()
  path = str(tmp_path / "pnasnet.safetensors")
  save_file({k: v.contiguous() for k, v in state.items()}, path)
  a = nnx.state(weights.from_torch(state, "pnasnet_5_large"))
  b = nnx.state(weights.from_torch(path, "pnasnet_5_large"))
  assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  kernel = state["cell_0.comb_iter_0_left.separable_1.depthwise_conv2d.weight"].numpy()
  ours = jax.tree.leaves(a["cells"][2]["blocks"][0]["ops"][0]["depthwise"][0]["kernel"])[0]
  np.testing.assert_array_equal(np.asarray(ours), kernel.transpose(2, 3, 1, 0))


def test_wrong_model_names_the_first_tensor(tmp_path):
  state = _timm_model("pnasnet5large", seed=4).state_dict()
  with pytest.raises(UserError, match=r"'conv0.conv.weight'"):
    weights.from_torch(state, "nasnet_a_large")
