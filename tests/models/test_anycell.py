"""The genotype-as-data network: same numbers as the static network, one program per space."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models.networks import anycell
from models import ops, spaces
from models.zoo import catalog as zoo
from models.genotypes import genotype as gt
from models.networks.nasnet import Network
from nas.spaces import get_search_space

SIZE = dict(num_classes=10, image_size=8, layers=3, filters=4)  # normal, reduce, reduce
BATCH = 4


def _config(**overrides):
  return zoo.model_config("cifar", **{**SIZE, "aux_head": False, **overrides})


def _sample(space_name: str, seed: int, **want) -> gt.Genotype:
  """A two-block genotype of the space; `want` filters (e.g. has_concat=True)."""
  space = get_search_space(space_name, num_blocks=2)
  rng = np.random.default_rng(seed)
  for _ in range(200):
    g = space.sample(rng)
    has_concat = any(b.combine == "concat" for c in (g.normal, g.reduce) for b in c.blocks)
    reads_block_in_reduce = any(e.input >= 2 for b in g.reduce.blocks for e in b.edges)
    if want.get("has_concat", has_concat) == has_concat and want.get(
        "reads_block_in_reduce", reads_block_in_reduce) == reads_block_in_reduce:
      return g
  raise AssertionError("no such genotype")


def _op_subset(*genotypes: gt.Genotype) -> tuple[str, ...]:
  """The genotypes' ops plus two they do not use, in space order: a program any of them
  runs, with fewer branches to compile than the whole space."""
  rules = spaces.get_space(genotypes[0].space)
  used = {op for g in genotypes for op in g.normal.ops() + g.reduce.ops()}
  unused = [op for op in rules.ops if op not in used][:2]
  return tuple(op for op in rules.ops if op in used or op in unused)


def _build(g: gt.Genotype, config, op_names, seed: int = 3) -> tuple[Network, Network]:
  rules = spaces.get_space(g.space)
  static = Network(g, config, rngs=nnx.Rngs(seed))
  network = anycell.build(g, config, op_names, concat_combine="concat" in rules.combines,
                          rngs=nnx.Rngs(seed))
  return static, network


def _images(seed: int = 0) -> tuple[jax.Array, jax.Array]:
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(size=(BATCH, 8, 8, 3)), jnp.float32),
          jnp.arange(BATCH) % 10)


def _train_step(model: nnx.Module, images, labels, key):
  """Loss, logits, gradients and new BatchNorm statistics of one training forward."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss_fn(params):
    m = nnx.merge(graphdef, params, rest, copy=True)
    logits, aux = m(images, train=True, key=key, drop_path_rate=jnp.float32(0.3),
                    return_aux=True)
    loss = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(BATCH), labels])
    if aux is not None:
      loss += 0.4 * -jnp.mean(jax.nn.log_softmax(aux)[jnp.arange(BATCH), labels])
    return loss, (logits, nnx.state(m, nnx.BatchStat))

  (loss, (logits, stats)), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
  return loss, logits, grads, stats


def _in_anycell_layout(static: Network, network: Network, g: gt.Genotype, state, kind):
  """`state` (a Param or BatchStat state of `static`) moved into `network`'s layout."""
  others = nnx.state(static, nnx.Not(kind))
  carrier = nnx.merge(nnx.graphdef(static), state, others)
  target = nnx.clone(network)
  anycell.copy_weights(carrier, target, g)
  return nnx.state(target, kind)


def _max_abs_diff(a, b) -> float:
  return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a),
                                                           jax.tree.leaves(b)))


def test_training_forward_and_gradients_equal_the_static_network():
  # NASNet space with a concat block, a reduction edge reading a block, an auxiliary
  # head (its 1x1 conv reads a masked cell output) and scheduled drop path.
  g = _sample("nasnet", 0, has_concat=True, reads_block_in_reduce=True)
  config = _config(aux_head=True)
  static, network = _build(g, config, _op_subset(g))
  images, labels = _images()
  key = jax.random.key(7)
  s_loss, s_logits, s_grads, s_stats = _train_step(static, images, labels, key)
  a_loss, a_logits, a_grads, a_stats = _train_step(network, images, labels, key)
  assert abs(float(s_loss) - float(a_loss)) <= 1e-5
  assert _max_abs_diff(s_logits, a_logits) <= 1e-5
  # Every gradient of the static network, at its place; zero everywhere else.
  expected = _in_anycell_layout(static, network, g, s_grads, nnx.Param)
  scale = max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(s_grads))
  assert _max_abs_diff(expected, a_grads) <= 1e-5 * scale
  assert _max_abs_diff(_in_anycell_layout(static, network, g, s_stats, nnx.BatchStat),
                       a_stats) <= 1e-5
  # The unused weights do move nothing: their gradients are exactly zero.
  num_used = sum(int(np.count_nonzero(np.asarray(x))) for x in jax.tree.leaves(expected))
  num_nonzero = sum(int(np.count_nonzero(np.asarray(x))) for x in jax.tree.leaves(a_grads))
  assert num_nonzero <= num_used


def test_one_program_runs_every_genotype_of_the_space():
  config = _config()
  genotypes = [_sample("darts", s) for s in (1, 2)]
  op_names = _op_subset(*genotypes)
  builds = [_build(g, config, op_names) for g in genotypes]
  graphdefs = {nnx.graphdef(network) for _, network in builds}
  assert len(graphdefs) == 1  # genotype-independent structure: one jit cache entry

  @jax.jit
  @chex.assert_max_traces(n=1)
  def logits(state, images):
    return nnx.merge(graphdefs.copy().pop(), state)(images, train=False)

  images, _ = _images(1)
  outputs = []
  for (static, network), g in zip(builds, genotypes):
    assert network.cells[0].edge_op[...].tolist() == [
        [op_names.index(e.op) for e in b.edges] for b in g.normal.blocks]
    got = logits(nnx.state(network), images)
    assert _max_abs_diff(static(images, train=False), got) <= 1e-5
    outputs.append(got)
  assert _max_abs_diff(*outputs) > 1e-3  # the two genotypes did compute different things


def test_choices_outside_the_program_are_refused():
  g = _sample("pnas", 0)

  def any_cell(cell: gt.Cell, concat_combine: bool = False) -> anycell.AnyCell:
    return anycell.AnyCell(cell, op_names=spaces.PNAS.ops, concat_combine=concat_combine,
                           c_prev_prev=12, c_prev=12, filters=4, reduction=False,
                           reduce_prev=False, style=ops.DARTS_STYLE,
                           rngs=ops.KeyStream(jax.random.key(0)))

  assert any_cell(g.normal).combine is None  # PNAS blocks only add
  wrong_op = gt.Cell(blocks=(gt.Block((gt.Edge(0, "sep_conv_9x9"), gt.Edge(1, "identity"))),
                             g.normal.blocks[1]))
  with pytest.raises(gt.GenotypeError, match="sep_conv_9x9"):
    any_cell(wrong_op)
  concat = gt.Cell(blocks=(gt.Block(g.normal.blocks[0].edges, "concat"), g.normal.blocks[1]))
  with pytest.raises(gt.GenotypeError, match="concat combine"):
    any_cell(concat)
  assert any_cell(concat, concat_combine=True).block_concat[...].tolist() == [1, 0]
  with pytest.raises(gt.GenotypeError, match="stem"):
    anycell.build(g, zoo.model_config("nasnet_a_mobile"), spaces.PNAS.ops, concat_combine=False,
                  rngs=nnx.Rngs(0))
