"""Parameter and multiply-add parity with the published models (built abstractly).

References: Keras NASNetMobile/NASNetLarge trainable parameters (= timm nasnetalarge),
timm pnasnet5large, and the papers' tables (ImageNet models at native size with 1000
classes, CIFAR models with 10).
"""
from __future__ import annotations

import functools

import pytest
from flax import nnx

from models.analysis import flops
from models.zoo import catalog as zoo


@functools.lru_cache(maxsize=None)
def _counts(name: str) -> tuple[int, int]:
  model = nnx.eval_shape(lambda: zoo.build_model(name, rngs=nnx.Rngs(0)))
  return flops.count_params(model), flops.count_mult_adds(model, zoo.default_image_size(name))


@pytest.mark.parametrize("name,params", [
    ("nasnet_a_mobile", 5_289_978),
    ("nasnet_a_large", 88_753_150),
    ("pnasnet_5_large", 86_057_668),
])
def test_trainable_params_exact(name, params):
  assert _counts(name)[0] == params


@pytest.mark.parametrize("name,mult_adds", [
    ("nasnet_a_mobile", 564e6),
    ("nasnet_a_large", 23.8e9),
    ("pnasnet_5_large", 25.0e9),
    ("pnasnet_5_mobile", 588e6),
])
def test_mult_adds_within_2_percent(name, mult_adds):
  assert _counts(name)[1] == pytest.approx(mult_adds, rel=0.02)


def test_darts_v2_imagenet():
  params, mult_adds = _counts("darts_v2_imagenet")
  assert params == pytest.approx(4.7e6, rel=0.03)
  # The paper's 574M is not reproducible by counting convolutions and dense layers:
  # others measured 523M-545M for the same network (quark0/darts issue #46). We pin
  # our conv+dense count instead.
  assert mult_adds == pytest.approx(530e6, rel=0.02)


@pytest.mark.parametrize("name,params,rel", [
    ("pnasnet_5_mobile", 5.1e6, 0.02),
    ("nasnet_a_cifar", 3.3e6, 0.03),
    ("amoebanet_a_cifar", 3.2e6, 0.03),
    ("darts_v2_cifar", 3.3e6, 0.03),
])
def test_params_within_tolerance(name, params, rel):
  assert _counts(name)[0] == pytest.approx(params, rel=rel)


def test_aux_head_is_not_counted():
  with_aux = nnx.eval_shape(lambda: zoo.build_model("darts_v2_cifar", rngs=nnx.Rngs(0)))
  without = nnx.eval_shape(lambda: zoo.build_model("darts_v2_cifar", rngs=nnx.Rngs(0),
                                                   aux_head=False))
  assert with_aux.aux_head is not None and without.aux_head is None
  assert flops.count_params(with_aux) == flops.count_params(without)
