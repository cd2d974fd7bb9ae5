"""Published cells as genotype values.

Node 0 is h[i-2], node 1 is h[i-1], node 2 + k is block k. Edge order within a block
follows the reference implementations (left op first), so a weight importer can pair
tensors one to one. Sources: NASNet-A from Keras/TF-slim `nasnet.py` (the normal cell
also outputs h[i-2]); PNASNet-5 from TF-slim/timm `pnasnet.py` (all five blocks are
output); AmoebaNet-A, DARTS-V1/V2 and ENAS as given in DARTS's `genotypes.py`.
"""
from __future__ import annotations

from models.genotypes.genotype import Genotype, cell, validate

NASNET_A = validate(Genotype(
    normal=cell([
        [("sep_conv_5x5", 1), ("sep_conv_3x3", 0)],
        [("sep_conv_5x5", 0), ("sep_conv_3x3", 0)],
        [("avg_pool_3x3", 1), ("identity", 0)],
        [("avg_pool_3x3", 0), ("avg_pool_3x3", 0)],
        [("sep_conv_3x3", 1), ("identity", 1)],
    ], concat=[0, 2, 3, 4, 5, 6]),
    reduce=cell([
        [("sep_conv_5x5", 1), ("sep_conv_7x7", 0)],
        [("max_pool_3x3", 1), ("sep_conv_7x7", 0)],
        [("avg_pool_3x3", 1), ("sep_conv_5x5", 0)],
        [("avg_pool_3x3", 2), ("identity", 3)],
        [("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
    ], concat=[3, 4, 5, 6]),
    space="nasnet"))

_PNAS_CELL = cell([
    [("sep_conv_5x5", 0), ("max_pool_3x3", 0)],
    [("sep_conv_7x7", 1), ("max_pool_3x3", 1)],
    [("sep_conv_5x5", 1), ("sep_conv_3x3", 1)],
    [("sep_conv_3x3", 4), ("max_pool_3x3", 1)],
    [("sep_conv_3x3", 0), ("identity", 1)],
], concat=[2, 3, 4, 5, 6])

PNASNET_5 = validate(Genotype(normal=_PNAS_CELL, reduce=_PNAS_CELL, space="pnas"))

AMOEBANET_A = validate(Genotype(
    normal=cell([
        [("avg_pool_3x3", 0), ("max_pool_3x3", 1)],
        [("sep_conv_3x3", 0), ("sep_conv_5x5", 2)],
        [("sep_conv_3x3", 0), ("avg_pool_3x3", 3)],
        [("sep_conv_3x3", 1), ("identity", 1)],
        [("identity", 0), ("avg_pool_3x3", 1)],
    ], concat=[4, 5, 6]),
    reduce=cell([
        [("avg_pool_3x3", 0), ("sep_conv_3x3", 1)],
        [("max_pool_3x3", 0), ("sep_conv_7x7", 2)],
        [("sep_conv_7x7", 0), ("avg_pool_3x3", 1)],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1)],
        [("conv_1x7_7x1", 0), ("sep_conv_3x3", 5)],
    ], concat=[3, 4, 6]),
    space="nasnet"))

DARTS_V1 = validate(Genotype(
    normal=cell([
        [("sep_conv_3x3", 1), ("sep_conv_3x3", 0)],
        [("skip_connect", 0), ("sep_conv_3x3", 1)],
        [("skip_connect", 0), ("sep_conv_3x3", 1)],
        [("sep_conv_3x3", 0), ("skip_connect", 2)],
    ], concat=[2, 3, 4, 5]),
    reduce=cell([
        [("max_pool_3x3", 0), ("max_pool_3x3", 1)],
        [("skip_connect", 2), ("max_pool_3x3", 0)],
        [("max_pool_3x3", 0), ("skip_connect", 2)],
        [("skip_connect", 2), ("avg_pool_3x3", 0)],
    ], concat=[2, 3, 4, 5]),
    space="darts"))

DARTS_V2 = validate(Genotype(
    normal=cell([
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
        [("sep_conv_3x3", 1), ("skip_connect", 0)],
        [("skip_connect", 0), ("dil_conv_3x3", 2)],
    ], concat=[2, 3, 4, 5]),
    reduce=cell([
        [("max_pool_3x3", 0), ("max_pool_3x3", 1)],
        [("skip_connect", 2), ("max_pool_3x3", 1)],
        [("max_pool_3x3", 0), ("skip_connect", 2)],
        [("skip_connect", 2), ("max_pool_3x3", 1)],
    ], concat=[2, 3, 4, 5]),
    space="darts"))

# The ENAS CIFAR cell (5 blocks, DARTS op names), as DARTS evaluated it.
ENAS = validate(Genotype(
    normal=cell([
        [("sep_conv_3x3", 1), ("skip_connect", 1)],
        [("sep_conv_5x5", 1), ("skip_connect", 0)],
        [("avg_pool_3x3", 0), ("sep_conv_3x3", 1)],
        [("sep_conv_3x3", 0), ("avg_pool_3x3", 1)],
        [("sep_conv_5x5", 1), ("avg_pool_3x3", 0)],
    ], concat=[2, 3, 4, 5, 6]),
    reduce=cell([
        [("sep_conv_5x5", 0), ("avg_pool_3x3", 1)],
        [("sep_conv_3x3", 1), ("avg_pool_3x3", 1)],
        [("sep_conv_3x3", 1), ("avg_pool_3x3", 1)],
        [("sep_conv_5x5", 4), ("avg_pool_3x3", 1)],
        [("sep_conv_3x3", 5), ("sep_conv_5x5", 0)],
    ], concat=[2, 3, 6])))

PUBLISHED: dict[str, Genotype] = {
    "nasnet_a": NASNET_A,
    "pnasnet_5": PNASNET_5,
    "amoebanet_a": AMOEBANET_A,
    "darts_v1": DARTS_V1,
    "darts_v2": DARTS_V2,
    "enas": ENAS,
}
