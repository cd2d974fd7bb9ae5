"""Jitted steps kept for the next run in the same process.

A search trains its children one after another in one process. Children whose
networks share a graph definition (every child with `config.genotype_as_input`) and
a training recipe get the same jitted function back, so JAX's own cache serves the
trace and the compiled program: only the first child compiles.
"""
from __future__ import annotations

import collections
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")

MAX_ENTRIES = 4  # each entry holds compiled programs; static children never share one
_entries: collections.OrderedDict[Hashable, object] = collections.OrderedDict()


def get(key: Hashable, build: Callable[[], T]) -> T:
  """The value stored under `key`, built with `build()` on a miss (least recent evicted)."""
  if key in _entries:
    _entries.move_to_end(key)
    return _entries[key]
  value = build()
  _entries[key] = value
  while len(_entries) > MAX_ENTRIES:
    _entries.popitem(last=False)
  return value


def clear() -> None:
  _entries.clear()
