"""The summary CLI, run as a user runs it: one-line errors with exit 2, and --json counts."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from flax import nnx

from models.analysis import flops, summary
from models.genotypes import notation
from models.errors import UserError
from models.genotypes.genotype import genotype_hash
from models.networks.nb201 import NB201Network

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALL_3X3 = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
           "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")


def run_cli(*args: str) -> subprocess.CompletedProcess:
  env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
  env["XLA_FLAGS"] = ""  # one device is enough here
  return subprocess.run([sys.executable, "-m", "models.analysis.summary", *args], capture_output=True,
                        text=True, env=env, cwd=REPO, timeout=300)


def _stderr_lines(result) -> list[str]:
  return [line for line in result.stderr.splitlines() if line.strip()]


def test_malformed_genotype_file_is_one_line_exit_2(tmp_path):
  path = tmp_path / "bad.json"
  path.write_text('{"space": "nb201", "normal": {"num_inputs": 1, "blocks": '
                  '[{"edges": [["nor_conv_5x5", 0]]}]}}')
  result = run_cli(str(path))
  assert result.returncode == 2
  lines = _stderr_lines(result)
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith(f"error: {path}: normal.blocks[0].edges[0].op: unknown op "
                             f"'nor_conv_5x5'")
  assert result.stdout == ""


def test_missing_file_is_one_line_exit_2(tmp_path):
  result = run_cli(str(tmp_path / "missing.json"))
  assert result.returncode == 2
  assert _stderr_lines(result) == [f"error: {tmp_path / 'missing.json'}: cannot read genotype "
                                   f"file (No such file or directory)"]


def test_json_counts_match_the_model_built_in_process(tmp_path):
  path = tmp_path / "cell.txt"
  path.write_text(ALL_3X3 + "\n")
  result = run_cli(str(path), "--json", "--diagram", str(tmp_path / "cells.svg"))
  assert result.returncode == 0, result.stderr
  out = json.loads(result.stdout)
  g = notation.from_nb201(ALL_3X3)
  model = nnx.eval_shape(lambda: NB201Network(g, 10, rngs=nnx.Rngs(0)))
  assert out["params"] == flops.count_params(model) == 1_531_546
  # By hand: 45 cell convs of 3x3 at (32x32, 16->16), (16x16, 32->32), (8x8, 64->64) each
  # 2,359,296; stem 32*32*27*16; per residual block 2 x 1,179,648 + 2,359,296 + 131,072
  # (their first conv and 1x1 shortcut halve, the second keeps); classifier 64*10.
  assert out["mult_adds"] == 90 * 2_359_296 + 442_368 + 2 * (1_179_648 + 2_359_296 + 131_072) + 640
  assert out["name"] == "nb201" and out["image_size"] == 32 and out["num_classes"] == 10
  assert out["genotype_hash"] == genotype_hash(g)
  assert (out["normal_cells"], out["reduction_cells"]) == (15, 2)
  assert out["diagrams"] == [str(tmp_path / "cells_normal.svg")]
  assert "conv 3x3" in (tmp_path / "cells_normal.svg").read_text()


def test_unknown_name_and_misplaced_model_flag():
  with pytest.raises(UserError, match=r"^resnet50: neither a model name \(known: .*nb201"):
    summary.resolve("resnet50", None)
  with pytest.raises(UserError, match=r"^--model: only used with a genotype file"):
    summary.resolve("darts_v2_cifar", "imagenet")
  assert summary.resolve("darts_v2_cifar", None) == ("darts_v2_cifar", None, None)


def test_default_skeleton_follows_the_genotype():
  assert summary.default_skeleton(notation.from_nb201(ALL_3X3)) == "nb201"
  from tests.models.test_genotype import darts_v2
  assert summary.default_skeleton(darts_v2()) == "cifar"


def test_table_lists_every_figure():
  s = summary.Summary(name="nb201", genotype_file="cell.txt", image_size=32, num_classes=10,
                      genotype_hash="abc", space="nb201", params=1_531_546,
                      mult_adds=220_119_680, normal_cells=15, reduction_cells=2)
  table = summary.format_table(s)
  assert "1,531,546 (1.53M" in table and "220,119,680 (220.1M" in table
  assert "32x32" in table and "15 normal, 2 reduction" in table and "abc (space nb201)" in table
