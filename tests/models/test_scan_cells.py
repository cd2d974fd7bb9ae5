"""Scanned runs of identical cells: the grouping, and equality with the per-cell network."""
from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models.networks import cell_stack
from models.analysis import flops
from models import ops
from models.zoo import catalog as zoo
from models.networks.cell import Cell

# Compiling a train step is the cost here: the numeric checks use one stack with a run of
# three cells (reading a reduction cell's output as h[i-2]); the grouping uses (4, 4, 4).
SMALL = dict(num_classes=5, image_size=16, filters=4, normal_cells=(1, 4, 1))


def _build(scan_cells: bool, seed: int = 0, **overrides) -> nnx.Module:
  return zoo.build_model("darts_v2_cifar", rngs=nnx.Rngs(jax.random.key(seed, impl="rbg")),
                         scan_cells=scan_cells, **{**SMALL, **overrides})


@functools.lru_cache(maxsize=None)
def _pair() -> tuple[nnx.Module, nnx.Module]:
  """(per-cell, scanned) networks with equal weights; the scanned one starts from other ones."""
  unscanned, scanned = _build(False), _build(True, seed=1)
  cell_stack.copy_weights(unscanned, scanned)
  return unscanned, scanned


def _images(n: int = 6) -> jax.Array:
  return jnp.asarray(np.random.default_rng(0).normal(size=(n, 16, 16, 3)), jnp.float32)


def _in_layout(state: nnx.State, source: nnx.Module, target: nnx.Module,
               kind: type[nnx.Variable]) -> nnx.State:
  """`state` (variables of `source`'s layout) rearranged into `target`'s layout."""
  source, target = nnx.clone(source), nnx.clone(target)
  nnx.update(source, state)
  cell_stack.copy_weights(source, target)
  return nnx.state(target, kind)


def _assert_trees_close(a, b, atol: float) -> None:
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


@functools.lru_cache(maxsize=None)
def _outputs(scan_cells: bool) -> dict:
  """One train step's logits, aux logits, BN statistics and gradients; eval logits after it."""
  model = _pair()[scan_cells]
  graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)

  @jax.jit
  def run(params, stats, x, key):
    def loss(params):
      m = nnx.merge(graphdef, params, stats, copy=True)
      logits, aux = m(x, train=True, key=key, drop_path_rate=0.3, return_aux=True)
      value = (jnp.mean(jax.nn.log_softmax(logits)[:, 0]) +
               0.4 * jnp.mean(jax.nn.log_softmax(aux)[:, 0]))
      return value, (logits, aux, nnx.state(m, nnx.BatchStat))

    (_, (logits, aux, new_stats)), grads = jax.value_and_grad(loss, has_aux=True)(params)
    evaluated = nnx.merge(graphdef, params, new_stats, copy=True)(x)
    return dict(train=logits, aux=aux, eval=evaluated, stats=new_stats, grads=grads)

  with ops.depthwise_impl("lax"):  # a smaller program than the CPU shifted form
    return run(params, stats, _images(), jax.random.key(7, impl="rbg"))


def test_runs_are_the_maximal_identical_normal_cells():
  assert _pair()[1].cell_spans == ((0, 1), (1, 1), (2, 1), (3, 3), (6, 1), (7, 1))
  scanned = nnx.eval_shape(lambda: _build(True, normal_cells=(4, 4, 4)))
  # Stack 0: cells 0 and 1 read the stem; stacks 1, 2: the first cell factorized-reduces.
  assert scanned.cell_spans == ((0, 1), (1, 1), (2, 2), (4, 1), (5, 1), (6, 3), (9, 1),
                                (10, 1), (11, 3))
  runs = [c for c in scanned.cells if isinstance(c, cell_stack.CellRun)]
  assert [r.length for r in runs] == [2, 3, 3]
  assert runs[1].cell.preprocess0.conv.kernel.shape == (3, 1, 1, 32, 8)
  assert runs[1].cell.preprocess0.bn.mean.shape == (3, 8)
  # skip_reduction_input (NASNet-A Large): the two cells after a reduction differ from the rest.
  large = nnx.eval_shape(lambda: zoo.build_model(
      "nasnet_a_large", rngs=nnx.Rngs(0), filters=8, normal_cells=(4, 4, 4), scan_cells=True))
  assert large.cell_spans == ((0, 1), (1, 1), (2, 1), (3, 1), (4, 2), (6, 1), (7, 1), (8, 1),
                              (9, 2), (11, 1), (12, 1), (13, 1), (14, 2))


def test_default_layout_keeps_one_cell_per_entry():
  unscanned, _ = _pair()
  assert unscanned.cell_spans == tuple((i, 1) for i in range(8))
  assert all(isinstance(c, Cell) for c in unscanned.cells)
  assert unscanned.cells[4].preprocess0.conv.kernel.shape == (1, 1, 32, 8)


def test_copy_weights_round_trips_exactly_and_matches_the_seeded_build():
  unscanned, scanned = _pair()
  # Built from one seed, both layouts hold the same weights: cells are stacked after building.
  _assert_trees_close(nnx.state(scanned), nnx.state(_build(True)), atol=0)
  back = _build(False, seed=2)
  cell_stack.copy_weights(scanned, back)
  _assert_trees_close(nnx.state(back), nnx.state(unscanned), atol=0)
  other = nnx.eval_shape(lambda: _build(False, normal_cells=(1, 4, 2)))
  with pytest.raises(ValueError, match="differ"):
    cell_stack.copy_weights(scanned, other)


def test_scanned_network_matches_in_train_and_eval_mode():
  unscanned, scanned = _pair()
  a, b = _outputs(False), _outputs(True)
  for name in ("train", "aux", "eval"):
    assert np.abs(a[name]).max() > 0.1, name
    np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-5, err_msg=name)
  stats = _in_layout(b["stats"], scanned, unscanned, nnx.BatchStat)
  _assert_trees_close(stats, a["stats"], atol=1e-5)
  assert not np.allclose(a["stats"]["cells"][4]["preprocess1"]["bn"]["mean"][...], 0.0)


def test_scanned_network_gradients_match():
  unscanned, scanned = _pair()
  a, b = _outputs(False), _outputs(True)
  grads = _in_layout(b["grads"], scanned, unscanned, nnx.Param)
  _assert_trees_close(grads, a["grads"], atol=1e-5)
  assert float(jnp.abs(a["grads"]["cells"][5]["preprocess1"]["conv"]["kernel"][...]).max()) > 0


def test_per_cell_drop_path_rates_are_scanned():
  """Different rates per cell (TF-slim's cell scaling) go through the scan as inputs."""
  unscanned, scanned = _pair()
  cells, run = list(unscanned.cells[3:6]), scanned.cells[3]
  s = jnp.asarray(np.random.default_rng(1).normal(size=(2, 2, 8, 8, 32)), jnp.float32)
  key = jax.random.key(3, impl="rbg")
  rates = [0.2, 0.4, 0.6]
  keys = [jax.random.fold_in(key, i) for i in range(3)]

  @jax.jit
  def run_both(cells_state, run_state):
    per_cell = nnx.merge(*cells_state)
    s0, s1 = s[0], s[1]
    for cell, rate, k in zip(per_cell, rates, keys):
      s0, s1 = s1, cell(s0, s1, train=True, drop_rate=rate, key=k)
    scanned_run = nnx.merge(*run_state)
    return (s0, s1), scanned_run(s[0], s[1], train=True, rates=rates, keys=keys)

  with ops.depthwise_impl("lax"):
    expected, got = run_both(nnx.split(cells), nnx.split(run))
    uniform = jax.jit(lambda st: nnx.merge(*st)(s[0], s[1], train=True, rates=[0.4] * 3,
                                                 keys=keys))(nnx.split(run))
  _assert_trees_close(got, expected, atol=1e-5)
  assert not np.allclose(uniform[1], got[1], atol=1e-3)


def test_counts_match():
  unscanned, scanned = _pair()
  assert flops.count_params(scanned) == flops.count_params(unscanned) > 0
  assert flops.count_mult_adds(scanned, 16) == flops.count_mult_adds(unscanned, 16) > 0


def test_network_without_runs_is_unchanged():
  kw = dict(normal_cells=(1, 1, 1), aux_head=False)
  unscanned, scanned = _build(False, **kw), _build(True, **kw)
  assert scanned.cell_spans == tuple((i, 1) for i in range(5))
  assert jax.tree.structure(nnx.state(scanned)) == jax.tree.structure(nnx.state(unscanned))
  forward = jax.jit(lambda st, x: nnx.merge(*st)(x, train=True))
  with ops.depthwise_impl("lax"):
    np.testing.assert_array_equal(forward(nnx.split(scanned), _images(2)),
                                  forward(nnx.split(unscanned), _images(2)))


@pytest.mark.skipif(not os.environ.get("NAS_SLOW_TESTS"),
                    reason="compiles DARTS-V2 CIFAR twice (minutes on CPU); NAS_SLOW_TESTS=1 runs it")
def test_compile_time_of_darts_v2_cifar_train_step():
  """Prints trace and compile seconds of forward + backward, per-cell vs scanned."""
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  for scan_cells in (False, True):
    model = nnx.eval_shape(lambda: zoo.build_model(
        "darts_v2_cifar", rngs=nnx.Rngs(0), filters=4, scan_cells=scan_cells))
    graphdef, params, stats = nnx.split(model, nnx.Param, ...)

    def loss(params, stats, x, key):
      m = nnx.merge(graphdef, params, stats, copy=True)
      logits, aux = m(x, train=True, key=key, drop_path_rate=0.2, return_aux=True)
      return jnp.mean(logits) + 0.4 * jnp.mean(aux)

    # CPU seconds (all threads) beside wall seconds: a shared machine skews the latter.
    start = time.perf_counter(), time.process_time()
    lowered = jax.jit(jax.grad(loss)).trace(params, stats, x, jax.random.key(0)).lower()
    traced = time.perf_counter(), time.process_time()
    lowered.compile()
    done = time.perf_counter(), time.process_time()
    print(f"darts_v2_cifar F=4 scan_cells={scan_cells}: trace+lower "
          f"{traced[0] - start[0]:.1f} s ({traced[1] - start[1]:.1f} s CPU), compile "
          f"{done[0] - traced[0]:.1f} s ({done[1] - traced[1]:.1f} s CPU)")
