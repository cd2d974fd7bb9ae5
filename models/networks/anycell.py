"""One network program for every cell of a space: the genotype is data, not structure.

A search trains hundreds of children that differ only in their cells. Compiled as
`models.networks.cell.Cell`s, each child is a new XLA program (tens of seconds of compile on a
CPU per child). Here every edge slot holds the weights of every op of the space, the
edge's op and input are integer arrays (`CellChoice` variables, part of the model
state), and an edge runs only its chosen op (`lax.switch`). Every child of one space
and size is then the same program: it is traced and compiled once, and the next child
only brings new arrays.

`build(genotype, config, op_names, rngs)` returns a `models.networks.nasnet.Network` whose cells
are `AnyCell`s, initialised from the static network of the same genotype and seed
(`copy_weights`): the weights a child does not use are zero and receive zero gradients,
so training it follows the static child's trajectory step for step (tested to float
rounding). Layout:
- an edge's weights: `edges.ops[k]` for op k of `op_names` (reduction cells add the
  stride-1 variants for edges reading a block as `edges.ops[K + k]`), stacked over
  (block, edge);
- a `concat` combine: `combine`, stacked over blocks, for spaces that allow it;
- a cell's output is the concat of all its nodes (normal: both inputs and every block;
  reduction: every block) multiplied by a 0/1 mask, so the next cell's 1x1 convs read a
  fixed number of channels; the rows for masked nodes are zero.

Backward of an edge recomputes its chosen op (a `custom_vjp` around the switch):
differentiating `lax.switch` directly would make every edge write zero-filled
intermediates for all of its unchosen ops.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from models.networks import cell as cell_lib
from models.genotypes import genotype as gt
from models import ops
from models.networks.nasnet import Network, NetworkConfig


class CellChoice(nnx.Variable):
  """Part of a genotype as data: ops, inputs, combine rules or the output mask of a cell."""


class ChildParamCount(nnx.Variable):
  """The parameter count of the genotype's own network (the program holds every op's)."""


def child_param_count(model: nnx.Module) -> int | None:
  """`model`'s genotype's parameter count if it is an `AnyCell` network, else None."""
  count = getattr(model, "child_params", None)
  return None if count is None else int(count[...])


class EdgeChoices(nnx.Module):
  """Every op one edge slot can run; branch k of `__call__` runs `ops[k]`.

  In a reduction cell, ops reading a cell input stride 2 (branches 0..K-1) and ops
  reading a block stride 1 (branches K..2K-1).
  """

  def __init__(self, op_names: Sequence[str], filters: int, reduction: bool,
               style: ops.OpStyle, rngs: ops.KeyStream):
    strides = (2, 1) if reduction else (1,)
    self.ops = nnx.List([ops.make_op(name, filters, s, style, rngs)
                         for s in strides for name in op_names])


def _tiled(module: nnx.Module, shape: tuple[int, ...]) -> nnx.Module:
  """A module of `module`'s structure whose variables are its own tiled to `shape + ...`.

  Tiled on the host: eager `jnp` would compile a program for every variable shape.
  """
  state = jax.tree.map(lambda a: jnp.asarray(np.broadcast_to(np.asarray(a), shape + a.shape)),
                       nnx.state(module))
  return nnx.merge(nnx.graphdef(module), state)


def _edge_function(graphdef: nnx.GraphDef, num_branches: int, reads_block: tuple[bool, ...],
                   train: bool):
  """`edge(branch, params, stats, x_input, x_block) -> (y, new_stats)` of one edge slot.

  `x_input` feeds the branches reading a cell input, `x_block` those reading a block
  (the same array in normal cells).
  """

  def run(k: int, params, stats, x_input, x_block):
    module = nnx.merge(graphdef, params, stats, copy=True)
    with ops.control_flow_convs():
      y = module.ops[k](x_block if reads_block[k] else x_input, train=train)
    return y, nnx.state(module, nnx.BatchStat)

  def primal(branch, params, stats, x_input, x_block):
    return lax.switch(branch, [functools.partial(run, k) for k in range(num_branches)],
                      params, stats, x_input, x_block)

  if not train:
    return primal

  @jax.custom_vjp
  def edge(branch, params, stats, x_input, x_block):
    return primal(branch, params, stats, x_input, x_block)

  def forward(branch, params, stats, x_input, x_block):
    return primal(branch, params, stats, x_input, x_block), (branch, params, stats, x_input,
                                                             x_block)

  def backward(residuals, cotangents):
    branch, params, stats, x_input, x_block = residuals
    dy = cotangents[0]

    def grad(k: int, params, stats, x_input, x_block, dy):
      def f(params, x):
        operands = (x_input, x) if reads_block[k] else (x, x_block)
        return run(k, params, stats, *operands)[0]
      _, vjp = jax.vjp(f, params, x_block if reads_block[k] else x_input)
      d_params, dx = vjp(dy)
      zeros_input, zeros_block = jnp.zeros_like(x_input), jnp.zeros_like(x_block)
      return (d_params, zeros_input, dx) if reads_block[k] else (d_params, dx, zeros_block)

    d_params, d_input, d_block = lax.switch(
        branch, [functools.partial(grad, k) for k in range(num_branches)],
        params, stats, x_input, x_block, dy)
    return None, d_params, None, d_input, d_block

  edge.defvjp(forward, backward)
  return edge


class AnyCell(nnx.Module):
  """A cell whose blocks' inputs, ops and combine rules are `CellChoice` arrays.

  Takes the same arguments as `models.networks.cell.Cell` plus the space's `op_names` and whether
  the space lets a block concat its edges (`concat_combine`); `cell` sets the choice
  and the block count. Called like `Cell`.
  """

  def __init__(self, cell: gt.Cell, *, op_names: Sequence[str], concat_combine: bool,
               c_prev_prev: int | None, c_prev: int, filters: int, reduction: bool,
               reduce_prev: bool, style: ops.OpStyle, rngs: ops.KeyStream):
    if cell.num_inputs != 2 or c_prev_prev is None:
      raise gt.GenotypeError("AnyCell: needs two-input cells in a skeleton whose first cell "
                             "has both inputs (the cifar or darts_imagenet stem)")
    widths = {len(b.edges) for b in cell.blocks}
    if len(widths) != 1:
      raise gt.GenotypeError("AnyCell: every block needs the same number of edges")
    self.op_names = tuple(op_names)
    self.num_blocks, self.edges_per_block = len(cell.blocks), widths.pop()
    self.reduction, self.filters = reduction, filters
    self.preprocess0 = (ops.FactorizedReduce(c_prev_prev, filters, style=style, rngs=rngs)
                        if reduce_prev else ops.ConvBN(c_prev_prev, filters, style=style,
                                                       rngs=rngs))
    self.preprocess1 = ops.ConvBN(c_prev, filters, style=style, rngs=rngs)
    template = EdgeChoices(self.op_names, filters, reduction, style, rngs)
    self.edges = _tiled(template, (self.num_blocks, self.edges_per_block))
    self.combine = (_tiled(ops.ConvBN(filters * self.edges_per_block, filters, style=style,
                                      rngs=rngs), (self.num_blocks,))
                    if concat_combine else None)
    self.is_identity = tuple(ops.is_identity(op) for op in template.ops)
    # Output slots: the nodes the cell output may hold (a reduction cell's inputs are
    # twice its output size, so only its blocks).
    self.output_nodes = tuple(range(0 if not reduction else 2, 2 + self.num_blocks))
    self.out_channels = filters * len(self.output_nodes)
    for name, value in self._choice_arrays(cell).items():
      setattr(self, name, CellChoice(jnp.asarray(value)))

  def _choice_arrays(self, cell: gt.Cell) -> dict[str, np.ndarray]:
    op_index = {name: k for k, name in enumerate(self.op_names)}
    unknown = [e.op for b in cell.blocks for e in b.edges if e.op not in op_index]
    if unknown:
      raise gt.GenotypeError(f"op: {unknown[0]!r} is not an op of this AnyCell "
                             f"({', '.join(self.op_names)})")
    if self.combine is None and any(b.combine == "concat" for b in cell.blocks):
      raise gt.GenotypeError("combine: this AnyCell was built without the concat combine")
    concat = cell.output_nodes()
    if any(n not in self.output_nodes for n in concat):
      raise gt.GenotypeError(f"concat: nodes {list(concat)} outside this cell's output slots "
                             f"{list(self.output_nodes)}")
    return {
        "edge_op": np.asarray([[op_index[e.op] for e in b.edges] for b in cell.blocks],
                              np.int32),
        "edge_input": np.asarray([[e.input for e in b.edges] for b in cell.blocks], np.int32),
        "block_concat": np.asarray([b.combine == "concat" for b in cell.blocks], np.int32),
        "output_mask": np.asarray([n in concat for n in self.output_nodes], np.float32),
    }

  def __call__(self, s0: jax.Array, s1: jax.Array, *, train: bool, drop_rate: Any = 0.0,
               key: jax.Array | None = None) -> jax.Array:
    s0 = self.preprocess0(s0, train=train)
    s1 = self.preprocess1(s1, train=train)
    num_ops = len(self.op_names)
    reads_block = tuple(k >= num_ops for k in range(len(self.is_identity)))
    edges_graphdef, edge_params, edge_stats = nnx.split(self.edges, nnx.Param, nnx.BatchStat)
    edge = _edge_function(edges_graphdef, len(self.is_identity), reads_block, train)
    is_identity = jnp.asarray(self.is_identity)
    use_drop_path = (train and key is not None and not cell_lib.is_literal_zero(drop_rate))
    inputs = jnp.stack([s0, s1])
    if self.reduction:
      size = (-(-s1.shape[1] // 2), -(-s1.shape[2] // 2))
      nodes = jnp.zeros((self.num_blocks, s1.shape[0], *size, self.filters), s1.dtype)
      block_offset = 0
    else:
      nodes = jnp.concatenate(
          [inputs, jnp.zeros((self.num_blocks, *s1.shape[:3], self.filters), s1.dtype)])
      block_offset = 2  # normal cells keep both inputs in `nodes`

    if self.combine is not None:
      combine_graphdef, combine_params, combine_stats = nnx.split(self.combine, nnx.Param,
                                                                  nnx.BatchStat)
    else:
      combine_params = combine_stats = None

    def block_step(nodes, xs):
      b, params, stats, op, source, concat, c_params, c_stats = xs

      def edge_step(_, xs_edge):
        j, p, s, op_j, source_j = xs_edge
        if self.reduction:
          x_input = inputs[jnp.minimum(source_j, 1)]
          x_block = nodes[jnp.clip(source_j - 2, 0, self.num_blocks - 1)]
          branch = op_j + num_ops * (source_j >= 2)
        else:
          x_input = x_block = nodes[source_j]
          branch = op_j
        y, new_s = edge(branch, p, s, x_input, x_block)
        if use_drop_path:
          edge_key = jax.random.fold_in(jax.random.fold_in(key, b), j)
          y = jnp.where(is_identity[branch], y, cell_lib.drop_path(y, drop_rate, edge_key))
        return None, (y, new_s)

      _, (ys, new_stats) = lax.scan(
          edge_step, None, (jnp.arange(self.edges_per_block), params, stats, op, source))
      # Not jnp.sum(ys, axis=0): XLA:CPU hands that reduction to a library call that
      # took longer than the edges' ops.
      out = ys[0]
      for j in range(1, self.edges_per_block):
        out = out + ys[j]
      new_c_stats = None
      if c_params is not None:
        combine = nnx.merge(combine_graphdef, c_params, c_stats, copy=True)
        joined = jnp.concatenate(list(ys), axis=-1)
        out = jnp.where(concat > 0, combine(joined, train=train), out)
        # An `add` block has no combine conv: its statistics stay as they were.
        new_c_stats = jax.tree.map(lambda new, old: jnp.where(concat > 0, new, old),
                                   nnx.state(combine, nnx.BatchStat), c_stats)
      nodes = nodes.at[b + block_offset].set(out.astype(nodes.dtype))
      return nodes, (new_stats, new_c_stats)

    nodes, (new_edge_stats, new_combine_stats) = lax.scan(
        block_step, nodes,
        (jnp.arange(self.num_blocks), edge_params, edge_stats, self.edge_op[...],
         self.edge_input[...], self.block_concat[...], combine_params, combine_stats))
    if train:
      nnx.update(self.edges, new_edge_stats)
      if self.combine is not None:
        nnx.update(self.combine, new_combine_stats)
    mask = self.output_mask[...].astype(nodes.dtype)
    outputs = nodes * mask[:, None, None, None, None]
    return jnp.concatenate(list(outputs), axis=-1)


def space_supports(genotype: gt.Genotype, config: NetworkConfig) -> str | None:
  """None if `build` can run this genotype and skeleton, else the reason it cannot."""
  if genotype.reduce is None:
    return "needs a normal and a reduction cell"
  if config.stem not in ("cifar", "darts_imagenet"):
    return f"the {config.stem!r} stem has a one-input first cell"
  if config.skip_reduction_input or config.scan_cells:
    return "skip_reduction_input and scan_cells are not supported"
  return None


def build(genotype: gt.Genotype, config: NetworkConfig, op_names: Sequence[str], *,
          concat_combine: bool, rngs: nnx.Rngs) -> Network:
  """The `AnyCell` network running `genotype`, with the static network's initial weights.

  `op_names` (the space's ops) and `concat_combine` fix the program; every genotype of
  the same block count gets the same graph definition.
  """
  reason = space_supports(genotype, config)
  if reason is not None:
    raise gt.GenotypeError(f"AnyCell: {reason}")
  static = Network(genotype, config, rngs=rngs)
  cell_type = functools.partial(AnyCell, op_names=op_names, concat_combine=concat_combine)
  network = Network(genotype, config, rngs=nnx.Rngs(0), cell_type=cell_type)
  copy_weights(static, network, genotype)
  network.child_params = ChildParamCount(jnp.asarray(
      sum(x.size for x in jax.tree.leaves(nnx.state(static, nnx.Param))), jnp.int32))
  return network


def copy_weights(static: Network, network: Network, genotype: gt.Genotype) -> None:
  """Loads a static network's parameters and statistics into its `AnyCell` network.

  Every weight of `network` not taken from `static` becomes zero (BatchNorm statistics
  keep their initial values).
  """
  cells = list(network.cells)
  # Channel layout of each cell's output in both networks, for layers that read it.
  layouts = [_row_map(genotype.reduce if c.reduction else genotype.normal, c) for c in cells]
  readers = _readers(network, layouts)
  target = {path: v for path, v in nnx.to_flat_state(nnx.state(network))}
  values = {path: (np.zeros(v.shape, v.dtype) if isinstance(v, nnx.Param) else
                   np.array(v[...]))
            for path, v in target.items() if not isinstance(v, CellChoice)}
  for path, variable in nnx.to_flat_state(nnx.state(static)):
    value = np.asarray(variable[...])
    where, index = _target_of(path, cells, genotype)
    if where not in values:
      raise ValueError(f"copy_weights: no slot for {'/'.join(map(str, path))}")
    if index is not None:
      values[where][index] = value
    elif values[where].shape == value.shape:
      values[where] = value
    else:
      rows = readers[where[:-1]]
      axis = value.ndim - 2
      expanded = np.zeros(values[where].shape, value.dtype)
      expanded[(slice(None),) * axis + (rows,)] = value
      values[where] = expanded
  nnx.update(network, nnx.from_flat_state(
      [(path, target[path].replace(jnp.asarray(v))) for path, v in values.items()]))


def _target_of(path: tuple, cells: list[AnyCell], genotype: gt.Genotype):
  """(network path, index into it or None) of a static network's variable."""
  if path[0] == "cells" and path[2] == "blocks":
    c, b = path[1], path[3]
    if path[4] == "combine_conv":
      return ("cells", c, "combine", *path[5:]), (b,)
    j = path[5]
    cell = cells[c]
    source = (genotype.reduce if cell.reduction else genotype.normal).blocks[b].edges[j]
    branch = cell.op_names.index(source.op)
    if cell.reduction and source.input >= 2:
      branch += len(cell.op_names)
    return ("cells", c, "edges", "ops", branch, *path[6:]), (b, j)
  return path, None


def _row_map(cell: gt.Cell, any_cell: AnyCell) -> np.ndarray:
  """For each output channel of the static cell, its channel in the `AnyCell` output."""
  f = any_cell.filters
  return np.concatenate([np.arange(f) + f * any_cell.output_nodes.index(n)
                         for n in cell.output_nodes()])


def _readers(network: Network, layouts: list[np.ndarray]) -> dict[tuple, np.ndarray]:
  """{module path: row map} for the modules whose input is a cell's output."""
  readers, num_cells = {}, len(layouts)
  for c in range(num_cells):
    for name, source in (("preprocess0", c - 2), ("preprocess1", c - 1)):
      if source < 0:
        continue
      module = ("cells", c, name)
      if isinstance(getattr(network.cells[c], name), ops.FactorizedReduce):
        readers[module + ("conv_1",)] = readers[module + ("conv_2",)] = layouts[source]
      else:
        readers[module + ("conv",)] = layouts[source]
  readers[("classifier",)] = layouts[-1]
  if network.aux_head is not None:
    readers[("aux_head", "conv_1", "conv")] = layouts[network.aux_index]
  return readers
