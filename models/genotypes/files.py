"""Genotype files: read in any notation (JSON, DARTS `Genotype(...)`, NB201), written as JSON."""
from __future__ import annotations

import os
import tempfile

from models.genotypes.genotype import Genotype, GenotypeError, to_json
from models.genotypes.notation import parse_any


def load(path: str) -> Genotype:
  """Reads a genotype file: the JSON form, a DARTS `Genotype(...)` or an NB201 string."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError as e:
    raise GenotypeError(f"{path}: cannot read genotype file ({e.strerror})") from None
  try:
    return parse_any(text)
  except GenotypeError as e:
    raise GenotypeError(f"{path}: {e}") from None


def save(g: Genotype, path: str) -> None:
  """Writes the JSON form atomically (a crash never leaves half a file)."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".genotype-", suffix=".tmp")
  with os.fdopen(fd, "w") as f:
    f.write(to_json(g) + "\n")
  os.replace(tmp, path)
