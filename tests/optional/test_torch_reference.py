"""The PyTorch reference networks of the benchmark are our networks.

Optional (torch, `requirements-reference.txt`): parameter counts and shapes against our
JAX models, equal logits with copied weights, and what the DARTS search step does.
"""
from __future__ import annotations

import os
import statistics

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from reference import torch_nets, torch_supernet  # noqa: E402
from models.analysis import flops  # noqa: E402
from models.networks import nasnet as network, supernet
from models import ops, spaces
from models.zoo import published, catalog as zoo

# Small versions of each style: DARTS (cifar stem, aux head), Keras NASNet-A Mobile
# (ImageNet stem, "same" stride-2 padding, zero-padded pools) and Large (skip_reduction_input,
# odd sizes). No dropout: ours drops only when given a key.
SMALL = {
    "darts_v2_cifar": dict(filters=8, normal_cells=(1, 1, 1), num_classes=7),
    "nasnet_a_mobile": dict(filters=8, stem_filters=8, normal_cells=(1, 1, 1), num_classes=7,
                            aux_head=True, dropout=0.0),
    "nasnet_a_large": dict(filters=8, stem_filters=8, normal_cells=(1, 1, 1), num_classes=7,
                           image_size=33, dropout=0.0),
}
TINY_SEARCH = dict(layers=3, channels=4, steps=2, multiplier=2, num_classes=10)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
  # Two spinning OpenMP threads on a busy 2-core machine made these steps ~100x slower.
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


def _small(name: str):
  genotype = zoo.MODELS[name].genotype
  options = dict(SMALL[name])
  config = zoo.model_config(name, image_size=options.pop("image_size", 32), **options)
  return genotype, config


def _jax_shapes(model) -> list[tuple[int, ...]]:
  return sorted(tuple(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _randomize_statistics(model, seed: int) -> None:
  """Random BN scale/offset/statistics and biases, so a missed copy shows in the logits."""
  r = np.random.default_rng(seed)
  draw = {"scale": lambda s: r.uniform(0.5, 1.5, s), "var": lambda s: r.uniform(0.5, 1.5, s),
          "mean": lambda s: r.normal(0, 0.2, s), "bias": lambda s: r.normal(0, 0.2, s)}

  def randomize(path, x):
    name = next((k.key for k in reversed(path) if hasattr(k, "key")), None)
    return jnp.asarray(draw[name](x.shape), jnp.float32) if name in draw else x

  nnx.update(model, jax.tree_util.tree_map_with_path(randomize, nnx.state(model)))


def _nchw(images: np.ndarray) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


# ----------------------------------------------------------------------------- networks

# Ours, by models.analysis.flops.count_params (building the JAX models here would cost ~10 s).
@pytest.mark.parametrize("name,expected", [("darts_v2_cifar", 3_349_342),
                                           ("nasnet_a_mobile", 5_289_978)])
def test_full_size_parameter_counts_equal_ours(name, expected):
  net = torch_nets.build_network(zoo.MODELS[name].genotype, zoo.model_config(name))
  assert torch_nets.count_params(net) == expected


@pytest.mark.parametrize("name", list(SMALL))
def test_parameter_shapes_equal_ours(name):
  genotype, config = _small(name)
  ours = network.Network(genotype, config, rngs=nnx.Rngs(0))
  net = torch_nets.build_network(genotype, config)
  assert sorted(torch_nets.torch_shapes_in_jax_layout(net)) == _jax_shapes(ours)
  assert torch_nets.count_params(net) == flops.count_params(ours)


@pytest.mark.parametrize("name", list(SMALL))
def test_logits_with_copied_weights_equal_ours(name):
  genotype, config = _small(name)
  ours = network.Network(genotype, config, rngs=nnx.Rngs(0))
  _randomize_statistics(ours, seed=1)
  net = torch_nets.build_network(genotype, config)
  torch_nets.load_jax_state(net, ours)
  images = np.random.default_rng(2).normal(
      size=(2, config.image_size, config.image_size, 3)).astype(np.float32)
  with ops.depthwise_impl("lax"):  # a smaller program to compile than the CPU shifted form
    expected = np.asarray(nnx.jit(lambda m, x: m(x, train=False))(ours, images))
  with torch.no_grad():
    got = net.eval()(_nchw(images)).numpy()
  error, scale = float(np.max(np.abs(got - expected))), float(np.max(np.abs(expected)))
  print(f"{name}: max|torch - ours| = {error:.3g}, max|ours| = {scale:.3g}")
  assert error <= 1e-4 * scale


def test_loading_a_different_structure_fails():
  genotype, config = _small("darts_v2_cifar")
  ours = network.Network(genotype, config, rngs=nnx.Rngs(0))
  other = torch_nets.build_network(published.DARTS_V1, config)
  with pytest.raises(ValueError, match="structures differ|shape"):
    torch_nets.load_jax_state(other, ours)


def test_unimplemented_style_fields_are_named():
  genotype, config = _small("darts_v2_cifar")
  for field, value in (("bn_axis_name", "data"), ("dtype", jnp.bfloat16)):
    style = ops.OpStyle(**{field: value})
    with pytest.raises(NotImplementedError, match=f"OpStyle.{field}"):
      torch_nets.build_network(genotype, network.NetworkConfig(**{**vars(config), "style": style}))


def test_time_train_step_trains_the_module():
  genotype, config = _small("darts_v2_cifar")
  torch.manual_seed(0)
  net = torch_nets.build_network(genotype, config)
  images, labels = torch.randn(8, 3, 32, 32), torch.randint(0, 7, (8,))
  loss = lambda: float(torch.nn.functional.cross_entropy(net(images), labels).detach())
  net.train()
  before = loss()
  timing = torch_nets.time_train_step(net, images, labels, steps=3, warmup=1, lr=0.05)
  assert len(timing["times_s"]) == 3
  # times_s are rounded to 0.1 ms
  assert timing["median_s"] == pytest.approx(statistics.median(timing["times_s"]), abs=1e-4)
  assert timing["median_s"] > 0
  assert loss() < before


# ----------------------------------------------------------------------------- search

def test_search_network_parameter_count_equals_ours():
  from experiments.configs import darts_cifar10
  model = darts_cifar10.get_config("paper").model
  # experiments.darts_search.build_supernet's call, without importing its TF input pipeline.
  ours = nnx.eval_shape(lambda: supernet.SearchNetwork(
      num_classes=10, space=model.space, layers=model.layers, channels=model.channels,
      steps=model.steps, multiplier=model.multiplier, stem_multiplier=model.stem_multiplier,
      init_scale=model.alpha_init_scale, rngs=nnx.Rngs(0)))
  net = torch_supernet.build_search_network(
      spaces.get_space(model.space).ops, layers=model.layers, channels=model.channels,
      steps=model.steps, multiplier=model.multiplier, stem_multiplier=model.stem_multiplier)
  assert (model.layers, model.channels) == (8, 16)
  assert torch_nets.count_params(net) == flops.count_params(ours)
  weight_shapes = [s for s, (name, _) in zip(torch_nets.torch_shapes_in_jax_layout(net),
                                             net.named_parameters())
                   if name not in torch_supernet.ARCH_NAMES]
  ours_per_edge = torch_supernet.jax_search_variables(ours, nnx.Param)
  assert sorted(weight_shapes) == sorted(tuple(v.shape) for v in ours_per_edge.values())
  assert tuple(net.alpha_normal.shape) == tuple(ours.alpha_normal.shape) == (14, 8)


def test_search_network_logits_with_copied_weights_equal_ours():
  kw = {k: v for k, v in TINY_SEARCH.items() if k != "num_classes"}
  ours = supernet.SearchNetwork(num_classes=10, init_scale=0.3, rngs=nnx.Rngs(0), **kw)
  _randomize_statistics(ours, seed=1)
  net = torch_supernet.build_search_network(spaces.DARTS.ops, **TINY_SEARCH)
  torch_supernet.load_jax_state(net, ours)
  images = np.random.default_rng(2).normal(size=(4, 8, 8, 3)).astype(np.float32)
  with ops.depthwise_impl("lax"):   # training mode only: the search runs in it
    expected = np.asarray(nnx.jit(lambda m, x: m(x, train=True))(ours, images))
  with torch.no_grad():
    got = net.train()(_nchw(images)).numpy()
  assert np.max(np.abs(got - expected)) <= 1e-4 * np.max(np.abs(expected))


def _tiny_search_network(seed: int = 0, dtype=torch.float32):
  torch.manual_seed(seed)
  return torch_supernet.build_search_network(spaces.DARTS.ops, **TINY_SEARCH).to(dtype)


def _batches(dtype=torch.float32, n: int = 8):
  g = torch.Generator().manual_seed(1)
  images = lambda: torch.randn(n, 3, 8, 8, generator=g, dtype=dtype)
  labels = lambda: torch.randint(0, 10, (n,), generator=g)
  return images(), labels(), images(), labels()


def _val_loss(net, val_x, val_y) -> float:
  net.train()
  with torch.no_grad(), torch_supernet.frozen_batch_stats(net):
    return float(torch.nn.functional.cross_entropy(net(val_x), val_y))


def _copies(params):
  return [p.detach().clone() for p in params]


def test_first_order_alpha_steps_lower_the_validation_loss():
  net = _tiny_search_network()
  train_x, train_y, val_x, val_y = _batches()
  step = torch_supernet.make_search_step(net, order=1, lr=0.0, alpha_lr=0.05)
  weights, alpha = _copies(net.weight_parameters()), _copies(net.arch_parameters())
  before = _val_loss(net, val_x, val_y)
  for _ in range(5):
    step(train_x, train_y, val_x, val_y)
  after = _val_loss(net, val_x, val_y)
  print(f"val loss {before:.4f} -> {after:.4f} after 5 first-order α steps (lr 0)")
  assert after < before - 0.02
  assert all(torch.equal(a, b) for a, b in zip(weights, net.weight_parameters()))
  assert all(not torch.allclose(a, b) for a, b in zip(alpha, net.arch_parameters()))


def _after_one_step(net, batches, *, lr: float):
  """The weight optimizer after one real order-2 step (its momentum buffer now in play)."""
  step = torch_supernet.make_search_step(net, order=2, lr=lr)
  step(*batches)
  net.train()
  return step.weight_optimizer


def _hypergradient(net, weight_optimizer, train_x, train_y, val_x, val_y, **kw):
  grads, _ = torch_supernet.alpha_grad_second_order(
      net, weight_optimizer, (train_x, train_y), (val_x, val_y), **kw)
  return torch.cat([g.flatten() for g in grads])


def _first_order_gradient(net, val_x, val_y):
  net.train()
  loss = torch.nn.functional.cross_entropy(net(val_x), val_y)
  return torch.cat([g.flatten() for g in torch.autograd.grad(loss, net.arch_parameters())])


def test_second_order_gradient_is_first_order_at_zero_lr():
  net = _tiny_search_network()
  batches = _batches()
  second = _hypergradient(net, _after_one_step(net, batches, lr=0.0), *batches)
  first = _first_order_gradient(net, *batches[2:])
  torch.testing.assert_close(second, first, rtol=1e-5, atol=1e-7)


def test_finite_difference_hypergradient_matches_double_backprop():
  net = _tiny_search_network(dtype=torch.float64)
  batches = _batches(torch.float64)
  weight_optimizer = _after_one_step(net, batches, lr=0.1)
  exact = _hypergradient(net, weight_optimizer, *batches, hvp="exact")
  first = _first_order_gradient(net, *batches[2:])
  # A tiny shift keeps the central difference off ReLU/max-pool kinks.
  finite = _hypergradient(net, weight_optimizer, *batches, fd_scale=1e-6)
  print(f"|exact - first order| = {float((exact - first).norm()):.3g}, "
        f"|finite difference - exact| = {float((finite - exact).norm()):.3g}")
  assert float((exact - first).norm()) > 1e-3 * float(first.norm())
  torch.testing.assert_close(finite, exact, rtol=1e-5, atol=1e-8)


def test_second_order_steps_move_alpha_and_weights():
  net = _tiny_search_network()
  batches = _batches()
  step = torch_supernet.make_search_step(net, order=2)
  weights, alpha = _copies(net.weight_parameters()), _copies(net.arch_parameters())
  losses = [step(*batches) for _ in range(2)]
  assert all(np.isfinite(v) for loss in losses for v in loss.values())
  assert any(not torch.allclose(a, b) for a, b in zip(weights, net.weight_parameters()))
  assert all(not torch.allclose(a, b) for a, b in zip(alpha, net.arch_parameters()))


def test_search_step_peak_memory_grows_with_the_batch():
  peaks = []
  for n in (4, 16):
    net = _tiny_search_network()
    batches = _batches(n=n)
    step = torch_supernet.make_search_step(net, order=2)
    timing = torch_supernet.time_search_step(step, *batches, steps=1, warmup=1)
    memory = torch_supernet.search_step_peak_memory(net, step, *batches)
    assert len(timing["times_s"]) == 1
    params = sum(p.numel() * 4 for p in net.parameters()) / 2 ** 20
    assert memory["state_mib"] >= 2 * params - 0.01   # parameters + momentum buffers
    peaks.append(memory["step_peak_mib"])
  print(f"peak MiB of one order-2 search step, batch 4 vs 16: {peaks}")
  assert peaks[1] > 2 * peaks[0] > 0


@pytest.mark.skipif(not os.environ.get("NAS_REFERENCE_SUITE"),
                    reason="reference suite only (NAS_REFERENCE_SUITE=1): compiling our "
                           "second-order step takes 1-2 minutes on 2 cores")
def test_hypergradient_equals_our_bilevel_step():
  import functools

  from experiments import darts_search
  from nas.darts import bilevel
  kw = {k: v for k, v in TINY_SEARCH.items() if k != "num_classes"}
  ours = supernet.SearchNetwork(num_classes=10, init_scale=0.3, rngs=nnx.Rngs(0), **kw)
  net = torch_supernet.build_search_network(spaces.DARTS.ops, **TINY_SEARCH)
  torch_supernet.load_jax_state(net, ours)
  r = np.random.default_rng(0)
  train_x, val_x = (r.normal(size=(6, 8, 8, 3)).astype(np.float32) for _ in range(2))
  train_y, val_y = (r.integers(0, 10, 6).astype(np.int32) for _ in range(2))
  xi, momentum, decay = 0.025, 0.9, 3e-4
  # Any momentum buffer that both sides hold in the same values will do: sin(w).
  graphdef, w, alpha, state = supernet.split(ours)
  grad = jax.jit(functools.partial(
      bilevel.alpha_grad, darts_search.make_loss_fn(graphdef, "lax"), order=2,
      hvp="finite_difference", momentum=momentum, weight_decay=decay))
  expected, (expected_loss, _) = grad(w, alpha, state, (train_x, train_y), (val_x, val_y), xi,
                                      momentum_buffer=jax.tree.map(jnp.sin, w))
  optimizer = torch.optim.SGD(net.weight_parameters(), lr=xi, momentum=momentum,
                              weight_decay=decay)
  for p in net.weight_parameters():
    optimizer.state[p]["momentum_buffer"] = torch.sin(p.detach())
  net.train()
  to_torch = lambda x, y: (_nchw(x), torch.from_numpy(y).long())
  got, loss = torch_supernet.alpha_grad_second_order(
      net, optimizer, to_torch(train_x, train_y), to_torch(val_x, val_y))
  assert abs(float(loss.detach()) - float(expected_loss)) < 1e-5
  for name, g in zip(torch_supernet.ARCH_NAMES, got):
    np.testing.assert_allclose(g.numpy(), np.asarray(expected[name][...]), atol=1e-5)
