"""Checkpoints of a training run: orbax `CheckpointManager` plus preemption handling.

Resume order (the only place it is written): the workdir's own latest checkpoint,
then `init_checkpoint` (model parameters only, e.g. converted weights), then the
freshly initialized state.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Any

import jax
import orbax.checkpoint as ocp

from models.errors import UserError


class Checkpoints:
  """Periodic saves into `directory`, keeping the last `keep`; async writes."""

  def __init__(self, directory: str, *, keep: int = 3):
    self.manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, *, force: bool = False) -> None:
    self.manager.save(step, args=ocp.args.StandardSave(state), force=force)

  def restore_latest(self, like: Any) -> Any:
    """The latest state, laid out (shape, dtype, sharding) like `like`."""
    step = self.manager.latest_step()
    return self.manager.restore(step, args=ocp.args.StandardRestore(_abstract(like)))

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def save_params(path: str, params: Any) -> None:
  """Writes a parameter pytree where `init_checkpoint` can read it."""
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.abspath(path), params, force=True)


def load_params(path: str, like: Any) -> Any:
  """Reads `init_checkpoint`; its tree must match the model's parameters."""
  if not os.path.isdir(path):
    raise UserError(f"config.init_checkpoint: no checkpoint directory at {path!r}")
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      return checkpointer.restore(os.path.abspath(path), _abstract(like))
  except (ValueError, KeyError, FileNotFoundError) as e:
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise UserError(f"config.init_checkpoint: {path!r} does not match the model: "
                    f"{first_line}") from None


def _abstract(tree: Any) -> Any:
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                      tree)


class PreemptionFlag:
  """Set by SIGTERM; the loop checks it after each step, saves, and stops."""

  def __init__(self):
    self.raised = False
    self._previous = None

  def __enter__(self) -> "PreemptionFlag":
    if threading.current_thread() is threading.main_thread():  # signals reach only the main thread
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def _handle(self, signum, frame) -> None:
    del signum, frame
    self.raised = True
