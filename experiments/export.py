"""Export the best cell of a search, and the network trained from it, as a model definition.

  python -m experiments.export --genotype=runs/search/genotype.json \
      --train_workdir=runs/train --name=found_cell --out=runs/export

writes `runs/export/found_cell/`: model.json (skeleton, sizes, classes, genotype),
params/ and batch_stats/ (the trained weights, when --train_workdir is given), genotype.json,
cell diagrams (PNG and SVG) and export.json (what was written, params, mult-adds).
Train or fine-tune it with `--config.model=runs/export/found_cell`, adding
`--config.init_checkpoint=runs/export/found_cell/params` to start from its weights.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile

from absl import flags

from experiments import config_util
from models.zoo import exported
from models.genotypes import genotype as genotype_lib
from models.genotypes import files as genotype_files
from models.errors import UserError

_GENOTYPE = flags.DEFINE_string("genotype", None, "Genotype file (JSON, DARTS or NB201 notation); "
                                "default: the training run's genotype.")
_TRAIN_WORKDIR = flags.DEFINE_string("train_workdir", None,
                                     "A finished `experiments.train` workdir to take sizes and "
                                     "weights from.")
_NAME = flags.DEFINE_string("name", "found_cell", "Name of the exported model.")
_OUT = flags.DEFINE_string("out", None, "Directory that receives the export folder NAME/.")
_SKELETON = flags.DEFINE_string("skeleton", None, "Zoo skeleton when no training run is given "
                                "(default: cifar, or nb201 for NB201 cells).")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 10, "Classes, when no training run is given.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Image size, when no training run is given.")


def definition_from_training(train_workdir: str, name: str,
                             genotype: genotype_lib.Genotype | None
                             ) -> tuple[exported.ModelDefinition, str]:
  """The definition of the network a training run built, and its checkpoints directory."""
  import ml_collections
  from experiments import model_builder
  from experiments.data import pipeline
  config_path = os.path.join(train_workdir, "config.json")
  try:
    with open(config_path) as f:
      config = ml_collections.ConfigDict(json.load(f))
  except (OSError, ValueError) as e:
    raise UserError(f"--train_workdir: no readable config.json in {train_workdir} ({e})") from None
  skeleton, trained_genotype, overrides = model_builder.model_spec(config)
  genotype = genotype or trained_genotype
  if genotype is None:
    raise UserError(f"--train_workdir: {train_workdir} trained the zoo model {skeleton!r}, "
                    f"not a genotype; pass --genotype")
  overrides.pop("bn_axis_name", None)
  builder = pipeline.open_dataset(config.data.name, config.data.data_dir)
  definition = exported.ModelDefinition(
      name=name, skeleton=skeleton, genotype=genotype,
      num_classes=pipeline.num_classes(builder), image_size=config.data.image_size,
      overrides=overrides)
  return definition, os.path.join(train_workdir, "checkpoints")


def latest_weights(checkpoints_dir: str, out_dir: str) -> str:
  """Writes the parameters and BatchNorm statistics of a training run's latest checkpoint
  as `out_dir/params` and `out_dir/batch_stats` (the layout `config.init_checkpoint`
  reads, as `models.zoo.weights convert` writes); returns `out_dir`."""
  import orbax.checkpoint as ocp
  from experiments import checkpointing
  manager = ocp.CheckpointManager(os.path.abspath(checkpoints_dir))
  step = manager.latest_step()
  if step is None:
    raise UserError(f"--train_workdir: no checkpoint in {checkpoints_dir}")
  state = manager.restore(step, args=ocp.args.StandardRestore())
  manager.close()
  checkpointing.save_params(os.path.join(out_dir, exported.PARAMS_DIR), state["params"])
  checkpointing.save_params(os.path.join(out_dir, exported.BATCH_STATS_DIR),
                            state["model_state"])
  return out_dir


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not _OUT.value:
    raise UserError("--out: required")
  if not re.fullmatch(r"[A-Za-z0-9_.-]+", _NAME.value):
    raise UserError(f"--name: {_NAME.value!r} must be letters, digits, '.', '_' or '-'")
  genotype = genotype_files.load(_GENOTYPE.value) if _GENOTYPE.value else None
  from experiments import export_lib as export
  out_root = config_util.prepare_workdir(_OUT.value)
  out_dir = os.path.join(out_root, _NAME.value)
  weights_dir = None
  if _TRAIN_WORKDIR.value:
    definition, checkpoints_dir = definition_from_training(_TRAIN_WORKDIR.value, _NAME.value,
                                                           genotype)
    weights_dir = latest_weights(checkpoints_dir, tempfile.mkdtemp(dir=out_root))
  else:
    if genotype is None:
      raise UserError("--genotype or --train_workdir: one is required")
    skeleton = _SKELETON.value or ("nb201" if genotype.space == "nb201" else "cifar")
    definition = exported.ModelDefinition(name=_NAME.value, skeleton=skeleton, genotype=genotype,
                                          num_classes=_NUM_CLASSES.value,
                                          image_size=_IMAGE_SIZE.value)
  written = export.export_model(definition, out_dir, weights_dir=weights_dir)
  if weights_dir:
    shutil.rmtree(weights_dir, ignore_errors=True)
  print(json.dumps(written, indent=2))


if __name__ == "__main__":
  config_util.run(main, sys.argv)
