"""Runs of identical cells, applied as one scanned cell so XLA compiles the cell body once.

A run is `length` consecutive cells built with the same arguments. `CellRun` holds their
parameters and BatchNorm statistics stacked on a leading axis and applies them with
`nnx.scan`; the carry is `(s0, s1)` and the scanned inputs are the per-cell drop-path rates
and keys. `copy_weights` moves a network's weights between the per-cell and the stacked
layouts.
"""
from __future__ import annotations

from typing import Any, Hashable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from models.networks.cell import Cell


def identical_runs(signatures: Sequence[Hashable | None]) -> tuple[tuple[int, int], ...]:
  """`(start, length)` spans covering every cell; equal consecutive signatures share a span.

  A `None` signature (a cell never scanned, e.g. a reduction cell) always stands alone.
  """
  spans: list[list[int]] = []
  for i, signature in enumerate(signatures):
    if spans and signature is not None and signatures[spans[-1][0]] == signature:
      spans[-1][1] += 1
    else:
      spans.append([i, 1])
  return tuple((start, length) for start, length in spans)


def next_inputs(s0: jax.Array, s1: jax.Array, out: jax.Array,
                keep_s0: bool) -> tuple[jax.Array, jax.Array]:
  """(h[i-2], h[i-1]) of the next cell; `keep_s0` is NASNet-A Large's skip_reduction wiring."""
  return (s0, out) if keep_s0 else (s1, out)


def stack_states(states: Sequence[Any]) -> Any:
  """Equally shaped states -> one state whose leaves gain a leading axis over `states`."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def unstack_state(state: Any, length: int) -> list[Any]:
  """The inverse of `stack_states`."""
  return [jax.tree.map(lambda a, i=i: a[i], state) for i in range(length)]


def stack_modules(modules: Sequence[nnx.Module]) -> nnx.Module:
  """One module of the modules' structure whose every variable is theirs stacked on axis 0."""
  return nnx.merge(nnx.graphdef(modules[0]), stack_states([nnx.state(m) for m in modules]))


class CellRun(nnx.Module):
  """`length` identical cells: `run(s0, s1, train=..., rates=..., keys=...) -> (s0, s1)`."""

  def __init__(self, cells: Sequence[Cell], keep_s0: bool):
    self.cell = stack_modules(cells)
    self.length = len(cells)
    self.keep_s0 = keep_s0

  def __call__(self, s0: jax.Array, s1: jax.Array, *, train: bool, rates: Sequence[Any],
               keys: Sequence[jax.Array] | None) -> tuple[jax.Array, jax.Array]:
    if len(rates) != self.length or (keys is not None and len(keys) != self.length):
      raise ValueError(f"CellRun: {self.length} cells need as many rates (got {len(rates)}) "
                       f"and keys")
    # A rate shared by every cell stays a Python value (a literal 0 then skips drop path,
    # exactly as the per-cell layout does); differing rates are scanned.
    shared = _shared_value(rates)
    scanned_rates = None if shared is not None else jnp.asarray(rates, jnp.float32)
    scanned_keys = None if keys is None else jnp.stack(keys)
    keep_s0 = self.keep_s0

    @nnx.scan(in_axes=(0, nnx.Carry, 0, 0), out_axes=nnx.Carry, length=self.length)
    def step(cell: Cell, carry, rate, key):
      s0, s1 = carry
      out = cell(s0, s1, train=train, drop_rate=shared if rate is None else rate, key=key)
      return next_inputs(s0, s1, out, keep_s0)

    return step(self.cell, (s0, s1), scanned_rates, scanned_keys)


def _shared_value(values: Sequence[Any]) -> Any | None:
  first = values[0]
  if all(v is first for v in values):
    return first
  if all(isinstance(v, (int, float)) and v == first for v in values):
    return first
  return None


def _cell_states(network: nnx.Module) -> list[Any]:
  """Every cell's state, in order, whichever layout `network` has."""
  states = []
  for entry, (_, length) in zip(network.cells, network.cell_spans):
    if isinstance(entry, CellRun):
      states += unstack_state(nnx.state(entry.cell), length)
    else:
      states.append(nnx.state(entry))
  return states


def _layout(tree: Any) -> tuple[Any, list[tuple[Any, Any]]]:
  return jax.tree.structure(tree), [(a.shape, a.dtype) for a in jax.tree.leaves(tree)]


def copy_weights(source: nnx.Module, target: nnx.Module) -> None:
  """Copies every parameter and BatchNorm statistic of `source` into `target`.

  Both are `models.networks.nasnet.Network`s of the same genotype and config except `scan_cells`:
  this converts between the per-cell and the scanned layout, either way.
  """
  cell_states = _cell_states(source)
  target_cells = _cell_states(target)
  if len(cell_states) != len(target_cells) or any(
      _layout(a) != _layout(b) for a, b in zip(cell_states, target_cells)):
    raise ValueError("copy_weights: source and target cells differ in number or shape")
  for name, value in vars(source).items():
    if name != "cells" and isinstance(value, nnx.Module):
      nnx.update(getattr(target, name), nnx.state(value))
  for entry, (start, length) in zip(target.cells, target.cell_spans):
    if isinstance(entry, CellRun):
      nnx.update(entry.cell, stack_states(cell_states[start:start + length]))
    else:
      nnx.update(entry, cell_states[start])
