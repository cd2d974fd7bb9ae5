"""The PNAS search space (Liu et al., 2018): 8 ops, add, output = concat of all blocks.

Progressive search grows cells one block at a time: `PNASSpace(num_blocks=b)`.
"""
from __future__ import annotations

from models import spaces
from nas.spaces.base import register
from nas.spaces.cells import CellSpace


@register("pnas")
class PNASSpace(CellSpace):
  rules = spaces.PNAS
  op_choices = spaces.PNAS.ops
  concat_all = True
