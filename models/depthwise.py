"""Depthwise 2-D convolution (NHWC, kernel HWIO with I=1, O=C*multiplier).

Every op that needs a depthwise conv calls `depthwise_conv2d`, so a faster
backend-specific path can be chosen in one place.
"""
from __future__ import annotations

from typing import Sequence

import jax
from jax import lax


def depthwise_conv2d(x: jax.Array, kernel: jax.Array, *, strides: Sequence[int] = (1, 1),
                     padding: str | Sequence[tuple[int, int]] = "SAME",
                     dilation: Sequence[int] = (1, 1)) -> jax.Array:
  """`x`: (N, H, W, C); `kernel`: (kh, kw, 1, C * multiplier)."""
  return lax.conv_general_dilated(
      x, kernel, window_strides=tuple(strides), padding=padding,
      rhs_dilation=tuple(dilation), dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=x.shape[-1])
