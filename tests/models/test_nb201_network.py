"""The NAS-Bench-201 skeleton: parameter counts derived by hand, cell semantics, shapes."""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models.genotypes import genotype as G
from models.genotypes import notation
from models.networks.nb201 import NB201Cell, NB201Network, ResidualReduction
from models.ops import DARTS_STYLE


def _rngs() -> nnx.Rngs:
  # RBG keys: XLA:CPU compiles threefry initializers about 10x slower (5.9 s vs 53 s to
  # initialize the tiny network below on a loaded 2-core machine).
  return nnx.Rngs(jax.random.key(0, impl="rbg"))


def _images(*shape: int) -> jax.Array:
  return jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)


def _params(model) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _abstract(text: str, **kwargs):
  g = notation.from_nb201(text)
  return nnx.eval_shape(lambda: NB201Network(g, 10, rngs=nnx.Rngs(0), **kwargs))


# Hand derivation from NAS-Bench-201's reference network (C=16, N=5, 10 classes),
# counting trainable parameters (conv kernels, BN scale+bias, linear weight+bias):
#   stem: conv 3->16 3x3 (432) + BN (32)                                     =     464
#   residual block 16->32: ReLUConvBN 16->32 3x3 s2 (4608 + 64),
#     ReLUConvBN 32->32 3x3 (9216 + 64), shortcut avg-pool + 1x1 16->32 (512) =  14,464
#   residual block 32->64: (18432 + 128) + (36864 + 128) + 2048              =  57,600
#   head BN 64 (128) + linear 64->10 (650)                                   =     778
#   skeleton without cells                                                   =  73,306
# A ReLU-conv-BN edge at width C has 9C^2 + 2C (3x3) or C^2 + 2C (1x1) parameters;
# pools, skip and none have none. Five cells at each of C = 16, 32, 64:
#   all nor_conv_3x3 (6 edges): 5 * 6 * (2336 + 9280 + 36992) = 1,458,240 -> 1,531,546
#   the README cell (3 x 3x3):  5 * 3 * 48,608                 =   729,120 ->   802,426
#   1x1, 3x3, 1x1 (+ 3 free):   5 * (2*288 + 2336 + 2*1088 + 9280 + 2*4224 + 36992)
#                                                               =   299,040 ->   372,346
ALL_3X3 = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
           "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
PARAM_COUNTS = [
    (ALL_3X3, 1_531_546),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
     "skip_connect~2|", 802_426),
    ("|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_1x1~2|",
     372_346),
    ("|skip_connect~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|", 73_306),
]


@pytest.mark.parametrize("text,expected", PARAM_COUNTS)
def test_parameter_counts_match_the_hand_derivation(text, expected):
  assert _params(_abstract(text)) == expected


def test_width_and_depth_scale_the_count():
  # C=8, one cell per stage, all-3x3 cell: stem 216+16; cells 6*(576+16) + 6*(2304+32)
  # + 6*(9216+64); blocks (1152+32)+(2304+32)+128 and (4608+64)+(9216+64)+512;
  # head 64 + 32*10+10.
  expected = (232 + 6 * (592 + 2336 + 9280) + (1184 + 2336 + 128) + (4672 + 9280 + 512)
              + 64 + 330)
  assert _params(_abstract(ALL_3X3, channels=8, cells_per_stage=1)) == expected


def test_cell_sums_incoming_edges():
  # node1 = x, node2 = 0 + node1 = x, node3 = x + 0 + node2 = 2x.
  g = notation.from_nb201("|skip_connect~0|+|none~0|skip_connect~1|"
                          "+|skip_connect~0|none~1|skip_connect~2|")
  cell = NB201Cell(g.normal, 4, style=DARTS_STYLE, rngs=_rngs())
  x = _images(2, 5, 5, 4)
  np.testing.assert_array_equal(nnx.jit(lambda c, x: c(x, train=False))(cell, x), 2 * x)
  # node3 = node2 = node1 = avg(x); NB201 pools exclude the padding (count_include_pad=False).
  g = notation.from_nb201("|avg_pool_3x3~0|+|none~0|skip_connect~1|"
                          "+|none~0|none~1|skip_connect~2|")
  cell = NB201Cell(g.normal, 4, style=DARTS_STYLE, rngs=_rngs())
  out = nnx.jit(lambda c, x: c(x, train=False))(cell, x)
  np.testing.assert_allclose(out[:, 2, 2], x[:, 1:4, 1:4].mean(axis=(1, 2)), rtol=1e-5)
  np.testing.assert_allclose(out[:, 0, 0], x[:, 0:2, 0:2].mean(axis=(1, 2)), rtol=1e-5)


def test_residual_reduction_shortcut_is_avg_pool_then_1x1():
  block = ResidualReduction(3, 6, style=DARTS_STYLE, rngs=_rngs())
  block.conv_b.bn.scale[...] = jnp.zeros(6)  # silence the conv branch
  x = _images(2, 8, 8, 3)
  pooled = x.reshape(2, 4, 2, 4, 2, 3).mean(axis=(2, 4))
  expected = jnp.einsum("nhwc,cd->nhwd", pooled, block.shortcut.kernel[...][0, 0])
  out = nnx.jit(lambda b, x: b(x, train=False))(block, x)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_forward_shapes_train_step_and_batch_stats():
  g = notation.from_nb201(PARAM_COUNTS[1][0])
  model = NB201Network(g, 7, channels=4, cells_per_stage=1, rngs=_rngs())
  x = _images(2, 8, 8, 3)

  @nnx.jit
  def evaluate(m, x):
    return m(x), m(x, return_aux=True)

  @nnx.jit
  def train_step(m, x):
    loss = lambda m: jnp.sum(m(x, train=True, key=jax.random.key(3), drop_path_rate=0.2) ** 2)
    return nnx.grad(loss)(m)

  logits, (out, aux) = evaluate(model, x)
  assert logits.shape == (2, 7) and aux is None
  np.testing.assert_array_equal(out, logits)
  before = model.head_bn.mean[...]
  grads = train_step(model, x)
  assert not np.allclose(model.head_bn.mean[...], before)  # batch stats updated
  assert float(jnp.abs(grads.stem_conv.kernel[...]).sum()) > 0
  assert float(jnp.abs(grads.classifier.kernel[...]).sum()) > 0


@pytest.mark.parametrize("g,field", [
    (G.Genotype(G.cell([[("identity", 0), ("identity", 1)]]),
                G.cell([[("identity", 0), ("identity", 1)]])), "reduce"),
    (G.Genotype(G.cell([[("skip_connect", 0)], [("skip_connect", 0)]], num_inputs=1)),
     "normal.concat"),
    (G.Genotype(G.cell([[("skip_connect", 0)]], num_inputs=1, combine="concat")),
     "normal.blocks[0].combine"),
])
def test_cells_the_skeleton_cannot_build(g, field):
  with pytest.raises(G.GenotypeError, match=f"^{re.escape(field)}: "):
    NB201Network(g, 10, channels=4, cells_per_stage=1, rngs=nnx.Rngs(0))
