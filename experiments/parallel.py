"""Data parallelism with pmap semantics on the current API: `jax.shard_map` over `data`.

A step function written for one device (it sees its shard of the batch and calls
`lax.pmean(..., DATA_AXIS)` where replicas must agree) becomes one jitted program
over a 1-D mesh spanning every device of every process.
"""
from __future__ import annotations

import collections
from typing import Callable, Iterable, Iterator, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh named `data` over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_parallel(step_fn: Callable, mesh: Mesh, *, donate_state: bool = True) -> Callable:
  """`step_fn(state, batch, key) -> (state, metrics)`, run per device and jitted once.

  `state` and `key` are replicated, `batch` is split along its leading axis, and
  the returned state and metrics must be replica-invariant (pmean-ed).
  `check_vma=False` gives pmap semantics: gradients of replicated parameters are
  per-device until the step pmeans them (with it, JAX would psum them implicitly).
  """
  sharded = jax.shard_map(step_fn, mesh=mesh, in_specs=(P(), P(DATA_AXIS), P()),
                          out_specs=(P(), P()), check_vma=False)
  return jax.jit(sharded, donate_argnums=(0,) if donate_state else ())


def data_parallel_eval(eval_fn: Callable, mesh: Mesh) -> Callable:
  """`eval_fn(state, batch) -> metrics` (psum-ed or pmean-ed), jitted over the mesh."""
  return jax.jit(jax.shard_map(eval_fn, mesh=mesh, in_specs=(P(), P(DATA_AXIS)),
                               out_specs=P(), check_vma=False))


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, NamedSharding(mesh, P()))


def to_global(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This process's numpy part of a global batch -> global arrays sharded over `data`."""
  sharding = NamedSharding(mesh, P(DATA_AXIS))
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def prefetch_to_mesh(batches: Iterable[dict[str, np.ndarray]], mesh: Mesh,
                     size: int = 2) -> Iterator[dict[str, jax.Array]]:
  """Keeps `size` global batches in flight (transfers are asynchronous)."""
  queue = collections.deque()
  for batch in batches:
    queue.append(to_global(batch, mesh))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()
