"""Strategies by name; every module of this package registers its strategies."""
from __future__ import annotations

import importlib
import pkgutil

from models.errors import UserError
from nas.spaces.base import SearchSpace
from nas.strategies.base import _REGISTRY, Strategy, register

for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")


def known_strategies() -> list[str]:
  return sorted(_REGISTRY)


def make_strategy(name: str, space: SearchSpace, seed: int, **cfg) -> Strategy:
  """Builds the strategy `name`; an unknown name or option raises UserError."""
  if name not in _REGISTRY:
    raise UserError(f"strategy.name: unknown strategy {name!r} "
                    f"(known: {', '.join(known_strategies())})")
  try:
    return _REGISTRY[name](space, seed, **cfg)
  except TypeError as e:
    raise UserError(f"strategy.{name}: bad options {sorted(cfg)} ({e})") from None


__all__ = ["Strategy", "known_strategies", "make_strategy", "register"]
