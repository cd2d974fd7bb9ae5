"""The cell -> network compiler: every named network, train/eval, drop path, aux head."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models.genotypes import genotype as gt
from models import ops
from models.zoo import published, catalog as zoo
from models.errors import UserError
from models.networks.nasnet import darts_normal_cells

TINY = dict(num_classes=5, image_size=32, filters=8, normal_cells=(1, 1, 1))
NAMED = [n for n in zoo.model_names() if n not in zoo.OTHER_SKELETONS]


def _rngs() -> nnx.Rngs:
  return nnx.Rngs(jax.random.key(0, impl="rbg"))


def _build(name: str, **overrides):
  kwargs = {**TINY, **overrides}
  genotype = published.DARTS_V1 if zoo.MODELS[name].genotype is None else None
  return zoo.build_model(name, genotype=genotype, rngs=_rngs(), **kwargs)


def _loss_and_grads(model, x, key):
  graphdef, state = nnx.split(model)

  def loss(state):
    logits, aux = nnx.merge(graphdef, state)(x, train=True, key=key, drop_path_rate=0.2,
                                             return_aux=True)
    total = jnp.mean(jax.nn.log_softmax(logits)[:, 0])
    return total if aux is None else total + 0.4 * jnp.mean(jax.nn.log_softmax(aux)[:, 0])

  return jax.value_and_grad(loss)(state)


@pytest.mark.parametrize("name", NAMED)
def test_every_named_network_traces_forward_and_backward(name):
  model = nnx.eval_shape(lambda: _build(name))
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  with ops.depthwise_impl("lax"):  # fewer equations to trace than the CPU shifted form
    logits = jax.eval_shape(lambda m, x: m(x), model, x)
    value, grads = jax.eval_shape(_loss_and_grads, model, x, jax.random.key(0))
  assert logits.shape == (2, 5)
  assert value.shape == ()
  assert jax.tree.structure(grads) == jax.tree.structure(nnx.state(model))


@functools.lru_cache(maxsize=None)
def _probe(name: str, **overrides) -> dict[str, np.ndarray]:
  """One compiled program per network: every mode the tests compare, and the gradients."""
  model = _build(name, **dict(overrides))
  graphdef, state = nnx.split(model)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 32, 32, 3)), jnp.float32)

  @jax.jit
  def run(state, key):
    m = lambda: nnx.merge(graphdef, state)  # each call on fresh state: no BN update leaks
    out = {
        "eval": m()(x),
        "train": m()(x, train=True),
        "train_rate0_key": m()(x, train=True, key=key, drop_path_rate=0.0),
        "train_drop_a": m()(x, train=True, key=key, drop_path_rate=0.5),
        "train_drop_b": m()(x, train=True, key=jax.random.fold_in(key, 1), drop_path_rate=0.5),
    }
    _, aux = m()(x, train=True, return_aux=True)
    out["aux"] = jnp.zeros((0,)) if aux is None else aux
    out["loss"], grads = _loss_and_grads(m(), x, key)
    out["grads_finite"] = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g))
                                             for g in jax.tree.leaves(grads)]))
    out["grad_norm"] = jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree.leaves(grads)))
    return out

  with ops.depthwise_impl("lax"):  # a smaller program than the CPU shifted form
    return jax.tree.map(np.asarray, run(state, jax.random.key(1)))


# Compiling is the cost here (a minute on a busy 2-core machine), so one small network is
# run for real; every named network is traced forward and backward above.
PROBED = [("darts_v2_cifar", (("normal_cells", (1, 0, 0)),))]


@pytest.mark.parametrize("name,overrides", PROBED)
def test_small_network_gradients_are_finite_and_nonzero(name, overrides):
  out = _probe(name, **dict(overrides))
  assert out["grads_finite"] and out["grad_norm"] > 0
  assert np.isfinite(out["loss"])


@pytest.mark.parametrize("name,overrides", PROBED)
def test_train_and_eval_differ_and_drop_path(name, overrides):
  out = _probe(name, **dict(overrides))
  assert out["eval"].shape == (4, 5)
  assert not np.allclose(out["eval"], out["train"], atol=1e-4)   # batch vs running statistics
  np.testing.assert_allclose(out["train_rate0_key"], out["train"], rtol=1e-5, atol=1e-6)
  assert not np.allclose(out["train_drop_a"], out["train"], atol=1e-4)
  assert not np.allclose(out["train_drop_a"], out["train_drop_b"], atol=1e-4)


def test_aux_head_only_when_enabled():
  assert _probe(*PROBED[0][:1], **dict(PROBED[0][1]))["aux"].shape == (4, 5)
  with_aux = nnx.eval_shape(lambda: _build("darts_v2_cifar"))
  without = nnx.eval_shape(lambda: _build("darts_v2_cifar", aux_head=False))
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  _, aux = jax.eval_shape(lambda m, x: m(x, return_aux=True), without, x)
  assert aux is None and without.aux_head is None
  assert "aux_head" not in nnx.state(without) and "aux_head" in nnx.state(with_aux)


def test_stack_layout_and_skip_reduction_wiring():
  large = nnx.eval_shape(lambda: _build("nasnet_a_large", normal_cells=(2, 2, 2)))
  reductions = [c.reduction for c in large.cells]
  assert reductions == [True, True, False, False, True, False, False, True, False, False]
  # After each in-network reduction, the next cell keeps the reduction cell's h[i-2].
  assert large.keep_s0 == (False,) * 4 + (True,) + (False,) * 2 + (True,) + (False,) * 2
  assert isinstance(large.cells[5].preprocess0, ops.FactorizedReduce)
  mobile = nnx.eval_shape(lambda: _build("nasnet_a_mobile", normal_cells=(2, 2, 2)))
  assert not any(mobile.keep_s0)
  assert isinstance(mobile.cells[5].preprocess0, ops.FactorizedReduce)
  assert isinstance(mobile.cells[6].preprocess0, ops.ConvBN)
  # The first stem cell reads the raw stem conv as h[i-2]; widths double per stack.
  assert large.cells[0].preprocess0 is None
  assert [c.out_channels for c in mobile.cells] == [8 // 4 * 4, 8 // 2 * 4, 48, 48, 64, 96,
                                                    96, 128, 192, 192]


def test_darts_layers_and_published_structures():
  assert darts_normal_cells(20) == (6, 6, 6) and darts_normal_cells(14) == (4, 4, 4)
  assert published.NASNET_A.normal.output_nodes() == (0, 2, 3, 4, 5, 6)
  assert published.PNASNET_5.normal.output_nodes() == (2, 3, 4, 5, 6)
  for g in published.PUBLISHED.values():
    assert gt.from_json(gt.to_json(g)) == g


def test_unknown_name_and_override_are_user_errors():
  with pytest.raises(UserError, match="unknown model 'resnet'.*nasnet_a_mobile"):
    zoo.build_model("resnet", rngs=_rngs())
  with pytest.raises(UserError, match="model.widht: unknown override"):
    zoo.build_model("cifar", genotype=published.DARTS_V2, rngs=_rngs(), widht=3)
  with pytest.raises(UserError, match="needs a genotype"):
    zoo.build_model("cifar", rngs=_rngs())
  assert zoo.default_image_size("nasnet_a_large") == 331
  assert zoo.default_num_classes("darts_v2_cifar") == 10


def test_traced_drop_path_rate_and_cross_replica_bn_override():
  model = _build("cifar", bn_axis_name="data")
  assert all(m.style.bn_axis_name == "data" for _, m in nnx.iter_graph(model)
             if isinstance(m, ops.BatchNorm))
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  # A scheduled rate arrives traced; the network must apply drop path, not branch on it.
  out = jax.eval_shape(lambda m, x, r: m(x, train=True, key=jax.random.key(0), drop_path_rate=r),
                       nnx.eval_shape(lambda: _build("cifar")), x, jnp.float32(0.1))
  assert out.shape == (2, 5)
