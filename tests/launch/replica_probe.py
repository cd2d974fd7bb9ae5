"""Runs `python -m launch ARGS` with a probe on checkpoint saves: every process writes
the state it holds (its own replica of every array) to `$REPLICA_DUMP_DIR`.

  python -m tests.launch.replica_probe multihost -- experiments.train ...

The probe wraps orbax's public `CheckpointManager.save`, so the training code runs
unchanged; `replicas-p{process}-step{step}.npz` maps each state leaf's path to this
process's copy, after checking that all of the process's devices hold the same value.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import orbax.checkpoint as ocp

DUMP_DIR = "REPLICA_DUMP_DIR"


def local_replica(leaf) -> np.ndarray:
  shards = [np.asarray(shard.data) for shard in leaf.addressable_shards]
  for shard in shards[1:]:
    np.testing.assert_array_equal(shard, shards[0])  # replicated within the process too
  return shards[0]


def dump(step: int, state) -> None:
  import jax
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  arrays = {jax.tree_util.keystr(path): local_replica(leaf) for path, leaf in leaves
            if isinstance(leaf, jax.Array)}
  name = f"replicas-p{jax.process_index()}-step{int(step)}.npz"
  np.savez(os.path.join(os.environ[DUMP_DIR], name), **arrays)


def install() -> None:
  original = ocp.CheckpointManager.save

  def save(self, step, *args, **kwargs):
    item = getattr(kwargs.get("args"), "item", None)
    if item is not None:
      dump(step, item)
    return original(self, step, *args, **kwargs)

  ocp.CheckpointManager.save = save


if __name__ == "__main__":
  install()
  from launch import cli
  cli.main(sys.argv[1:])
