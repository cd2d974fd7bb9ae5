"""Export a found cell as a model definition: model.json, weights, diagrams, summary.

The result is a directory that `models.zoo.exported.load` reads and that every CLI
taking a model name also takes (`--config.model=EXPORT_DIR`).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any

from models.analysis import diagram
from models.zoo import exported
from models.genotypes import genotype as genotype_lib
from models.genotypes import files as genotype_files


def export_model(definition: exported.ModelDefinition, out_dir: str, *,
                 weights_dir: str | None = None) -> dict[str, Any]:
  """Writes the export; `weights_dir` holds orbax `params/` and `batch_stats/` to copy in.

  Returns what was written (also saved as `export.json` in `out_dir`).
  """
  os.makedirs(out_dir, exist_ok=True)
  written: dict[str, Any] = {"model": exported.save(definition, out_dir)}
  genotype_path = os.path.join(out_dir, "genotype.json")
  genotype_files.save(definition.genotype, genotype_path)
  written["genotype"] = genotype_path
  written["diagrams"] = diagram.draw_genotype(definition.genotype, os.path.join(out_dir, "cell"))
  if weights_dir is not None:
    for part in (exported.PARAMS_DIR, exported.BATCH_STATS_DIR):
      target = os.path.join(out_dir, part)
      staging = target + ".partial"
      shutil.rmtree(staging, ignore_errors=True)
      shutil.copytree(os.path.join(weights_dir, part), staging)
      shutil.rmtree(target, ignore_errors=True)
      os.replace(staging, target)
      written[part] = target
  written["summary"] = _summary(out_dir)
  with open(os.path.join(out_dir, "export.json"), "w") as f:
    json.dump(written, f, indent=2)
    f.write("\n")
  return written


def _summary(out_dir: str) -> dict[str, Any]:
  from models.analysis import summary
  s, _ = summary.summarize(out_dir)
  return {"params": s.params, "mult_adds": s.mult_adds, "genotype_hash": s.genotype_hash}
