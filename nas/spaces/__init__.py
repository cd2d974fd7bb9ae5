"""Search spaces by name; every module of this package registers its spaces."""
from __future__ import annotations

import importlib
import pkgutil

from models.errors import UserError
from nas.spaces.base import _REGISTRY, Decision, SearchSpace, register

for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")


def get_search_space(name: str, **kwargs) -> SearchSpace:
  """`get_search_space("pnas", num_blocks=2)`; unknown names raise UserError."""
  if name not in _REGISTRY:
    raise UserError(f"space: unknown search space {name!r} (known: {', '.join(sorted(_REGISTRY))})")
  return _REGISTRY[name](**kwargs)


__all__ = ["Decision", "SearchSpace", "get_search_space", "register"]
