"""Process defaults for XLA:CPU, applied once by every CLI before JAX starts its backend.

Why: an XLA:CPU executable allocates all of its temporaries as fresh buffers on every
call (the darts_v2_cifar train step at batch 64: 3.9 GB of temporaries). glibc serves
such sizes with `mmap` (or from a per-thread arena that returns memory with
`madvise`), so every step page-faults the whole working set back in and the kernel zeroes
it: on a 2-core CPU about 950,000 minor faults and 3-7 s of system time per step of an
8-cell DARTS network. Keeping those allocations in glibc's main heap and never trimming
it makes later steps reuse the same pages (about 4,000 faults, no system time).

What `apply()` does, only when JAX will run on the CPU (no accelerator plugin installed,
or `JAX_PLATFORMS` names cpu first):
- `mallopt(M_ARENA_MAX=1, M_MMAP_MAX=0, M_TRIM_THRESHOLD=-1)`: one heap, no mmap, no trim.
  The process keeps its peak heap size until it exits (a training process reaches that
  peak every step anyway).

Nothing is changed when the user already tunes glibc's allocator (`GLIBC_TUNABLES` with a
`glibc.malloc` entry or any `MALLOC_*` variable, or a preloaded allocator in
`LD_PRELOAD`), when `NAS_CPU_DEFAULTS=0`, or off glibc. Results do not change: only
where memory comes from. XLA:CPU flags were measured too (see the README's Performance
section); none helped, so no `XLA_FLAGS` are set here.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import sys

OPT_OUT = "NAS_CPU_DEFAULTS"  # "0": leave the process as it is
_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin",
                        "jax_rocm7_plugin", "libtpu")
# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
MALLOPT_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))

_applied: dict[str, object] | None = None


def runs_on_cpu(environ=os.environ) -> bool:
  """Whether JAX will pick the CPU backend, decided without starting JAX."""
  platforms = environ.get("JAX_PLATFORMS", "").strip().lower()
  if platforms:
    return platforms.split(",")[0].strip() == "cpu"
  return not any(importlib.util.find_spec(name) for name in _ACCELERATOR_PLUGINS)


def user_tunes_malloc(environ=os.environ) -> bool:
  return ("glibc.malloc" in environ.get("GLIBC_TUNABLES", "") or bool(environ.get("LD_PRELOAD"))
          or any(key.startswith("MALLOC_") for key in environ))


def _libc() -> ctypes.CDLL | None:
  if not sys.platform.startswith("linux"):
    return None
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.gnu_get_libc_version  # glibc only: musl has no mallopt parameters to set
    return libc
  except (OSError, AttributeError):
    return None


def apply(environ=os.environ) -> dict[str, object]:
  """Applies the CPU defaults once per process; returns what was done (for logs and tests).

  Call before anything starts a JAX backend (the CLIs call it first thing).
  """
  global _applied
  if _applied is not None:
    return _applied
  result: dict[str, object] = {"malloc": False, "reason": ""}
  libc = None
  if environ.get(OPT_OUT, "1") == "0":
    result["reason"] = f"{OPT_OUT}=0"
  elif not runs_on_cpu(environ):
    result["reason"] = "accelerator backend"
  elif user_tunes_malloc(environ):
    result["reason"] = "allocator tuned by the user"
  elif (libc := _libc()) is None:
    result["reason"] = "not glibc"
  if libc is not None:
    result["malloc"] = all(libc.mallopt(param, value) == 1 for param, value in MALLOPT_SETTINGS)
    result["reason"] = "applied" if result["malloc"] else "mallopt refused"
  _applied = result
  return result
