"""A dense 2-D convolution written as one matrix product per kernel tap.

`conv2d_as_matmuls(x, kernel)` sums `window(i, j) @ kernel[i, j]` over the kh*kw taps,
where `window(i, j)` is the strided slice of the padded input that tap reads. Its
gradients are slices, pads and matrix products too. XLA:CPU runs the gradient of a
convolution that sits inside `lax.switch` or a loop body on a generic loop (a 1x7
conv's forward+backward at 64x32x32x8 took 149 ms there against 10 ms outside;
this form took 15 ms inside), so `models.networks.anycell` uses it on CPU. The result equals
`lax.conv_general_dilated`'s.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
from jax import lax


def tap_windows(x: jax.Array, kernel_hw: Sequence[int], strides: Sequence[int],
                padding: Sequence[tuple[int, int]], dilation: Sequence[int]
                ) -> Iterator[tuple[int, int, jax.Array]]:
  """`(i, j, window)` for every kernel tap: the input pixels tap (i, j) multiplies."""
  (kh, kw), (sh, sw), (dh, dw) = kernel_hw, strides, dilation
  xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  out_h = (xp.shape[1] - ((kh - 1) * dh + 1)) // sh + 1
  out_w = (xp.shape[2] - ((kw - 1) * dw + 1)) // sw + 1
  for i in range(kh):
    for j in range(kw):
      r0, c0 = i * dh, j * dw
      yield i, j, lax.slice(xp, (0, r0, c0, 0),
                            (xp.shape[0], r0 + (out_h - 1) * sh + 1, c0 + (out_w - 1) * sw + 1,
                             xp.shape[3]), (1, sh, sw, 1))


def conv2d_as_matmuls(x: jax.Array, kernel: jax.Array, *, strides: Sequence[int] = (1, 1),
                      padding: Sequence[tuple[int, int]] = ((0, 0), (0, 0)),
                      dilation: Sequence[int] = (1, 1)) -> jax.Array:
  """`x`: (N, H, W, C); `kernel`: (kh, kw, C, O), one group; explicit padding."""
  out = None
  for i, j, window in tap_windows(x, kernel.shape[:2], strides, padding, dilation):
    term = jnp.einsum("nhwc,co->nhwo", window, kernel[i, j])
    out = term if out is None else out + term
  return out
