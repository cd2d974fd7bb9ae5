"""Exporting a cell: the definition round-trips, builds the same network, and trains by path."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import pytest
from flax import nnx

from experiments import model_builder
from experiments.configs import train_cifar
from models.zoo import exported, published
from models.analysis import flops
from models.errors import UserError
from experiments import export_lib as export

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _definition() -> exported.ModelDefinition:
  return exported.ModelDefinition(name="found", skeleton="cifar", genotype=published.DARTS_V2,
                                  num_classes=10, image_size=32,
                                  overrides={"layers": 5, "filters": 8, "aux_head": False})


def test_export_round_trip_builds_the_same_network(tmp_path):
  written = export.export_model(_definition(), str(tmp_path / "found"))
  loaded = exported.load(str(tmp_path / "found"))
  assert loaded == _definition()
  abstract = nnx.eval_shape(lambda: exported.build(loaded, rngs=nnx.Rngs(0)))
  assert written["summary"]["params"] == flops.count_params(abstract)
  assert all(os.path.isfile(p) for p in written["diagrams"])
  assert {os.path.basename(p) for p in written["diagrams"]} >= {"cell_normal.png",
                                                               "cell_reduce.svg"}


def test_training_config_takes_an_export_directory(tmp_path):
  export.export_model(_definition(), str(tmp_path / "found"))
  config = train_cifar.get_config()
  config.model = str(tmp_path / "found")
  name, genotype, overrides = model_builder.model_spec(config)
  assert (name, genotype, overrides) == ("cifar", published.DARTS_V2, _definition().overrides)


def test_bad_export_file_is_a_user_error(tmp_path):
  (tmp_path / "model.json").write_text(json.dumps({"format": exported.FORMAT, "name": "x"}))
  with pytest.raises(UserError, match="skeleton"):
    exported.load(str(tmp_path))


def test_export_cli_from_genotype_and_bad_input(tmp_path):
  genotype = tmp_path / "cell.txt"
  genotype.write_text("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
                      "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|\n")
  env = dict(os.environ, PYTHONPATH=ROOT)
  run = lambda *args: subprocess.run([sys.executable, "-m", "experiments.export", *args],
                                     cwd=ROOT, env=env, capture_output=True, text=True)
  ok = run(f"--genotype={genotype}", "--name=nb", f"--out={tmp_path / 'out'}")
  assert ok.returncode == 0, ok.stderr
  definition = exported.load(str(tmp_path / "out" / "nb"))
  assert definition.skeleton == "nb201" and definition.genotype.space == "nb201"
  bad = run(f"--genotype={tmp_path / 'missing.json'}", f"--out={tmp_path / 'out'}")
  lines = [l for l in bad.stderr.splitlines() if l.strip()]
  assert bad.returncode == 2 and len(lines) == 1 and "missing.json" in lines[0]


def test_export_from_training_run_carries_its_trained_parameters(tmp_path):
  import numpy as np
  import orbax.checkpoint as ocp
  cell = tmp_path / "tiny.nb201"
  cell.write_text("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
                  "+|skip_connect~0|none~1|nor_conv_3x3~2|\n")
  env = dict(os.environ, PYTHONPATH=ROOT)
  train = subprocess.run(
      [sys.executable, "-m", "experiments.train", "--config=experiments/configs/train_cifar.py",
       f"--workdir={tmp_path / 'train'}", f"--config.genotype={cell}",
       "--config.nb201_overrides.channels=4", "--config.nb201_overrides.cells_per_stage=1",
       "--config.data.train_split=train[:128]", "--config.data.eval_split=test[:64]",
       "--config.num_epochs=2", "--config.eval_every=0"],
      cwd=ROOT, env=env, capture_output=True, text=True)
  assert train.returncode == 0, train.stderr[-2000:]
  out = subprocess.run(
      [sys.executable, "-m", "experiments.export", f"--train_workdir={tmp_path / 'train'}",
       "--name=found", f"--out={tmp_path / 'export'}"],
      cwd=ROOT, env=env, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-2000:]
  definition = exported.load(str(tmp_path / "export" / "found"))
  assert definition.skeleton == "nb201" and definition.overrides == {"channels": 4,
                                                                    "cells_per_stage": 1}
  checkpoints = tmp_path / "train" / "checkpoints"
  step = max(int(d) for d in os.listdir(checkpoints) if d.isdigit())
  with ocp.StandardCheckpointer() as checkpointer:
    trained = checkpointer.restore(str(checkpoints / str(step) / "default"))
    shipped = {part: checkpointer.restore(str(tmp_path / "export" / "found" / part))
               for part in (exported.PARAMS_DIR, exported.BATCH_STATS_DIR)}
  for ours, theirs in ((trained["params"], shipped["params"]),
                       (trained["model_state"], shipped["batch_stats"])):
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
      np.testing.assert_array_equal(a, b)
