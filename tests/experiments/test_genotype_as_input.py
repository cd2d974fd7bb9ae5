"""Proxy children with `genotype_as_input`: one compiled step for all, same training."""
from __future__ import annotations

import numpy as np
import pytest

from experiments import step_cache, trainer
from experiments.proxy_evaluator import ProxyEvaluator, child_config
from models.genotypes import genotype as gt
from models.errors import UserError
from nas.spaces import get_search_space


def _tiny_child_config():
  # Two reduction cells only (the normal cell is checked in tests/models/test_anycell.py).
  config = child_config(num_epochs=0.016, filters=4, layers=2)  # 9 steps of 16
  with config.unlocked():
    config.batch_size = 16
    config.eval_batch_size = 200
    config.checkpoint_every = "0"
  return config


def _genotypes(count: int) -> list[gt.Genotype]:
  space = get_search_space("pnas", num_blocks=1)  # the smallest program to compile
  rng = np.random.default_rng(5)
  return [space.sample(rng) for _ in range(count)]


def test_children_share_one_compiled_step_and_train_like_static_networks(tmp_path):
  step_cache.clear()
  config = _tiny_child_config()
  assert config.genotype_as_input
  first, second = _genotypes(2)
  evaluator = ProxyEvaluator(config, str(tmp_path / "shared"))
  evaluator.evaluate(first, 1)
  train_steps = [v for k, v in step_cache._entries.items() if k[0] == "train"]
  assert len(train_steps) == 1
  shared = evaluator.evaluate(second, 2).metrics
  # The second child found the first child's step: still one entry, traced once.
  assert [v for k, v in step_cache._entries.items() if k[0] == "train"] == train_steps
  assert train_steps[0]._cache_size() == 1

  with config.unlocked():
    config.genotype_as_input = False
  static = ProxyEvaluator(config, str(tmp_path / "static")).evaluate(second, 2).metrics
  assert shared["steps"] == static["steps"] == 9
  assert shared["validation_examples"] == static["validation_examples"]
  assert shared["validation_accuracy"] == pytest.approx(static["validation_accuracy"], abs=1e-9)
  assert shared["train_loss"] == pytest.approx(static["train_loss"], rel=1e-4)
  assert shared["validation_loss"] == pytest.approx(static["validation_loss"], rel=1e-4)
  # The program holds the weights of every op; the child reports its own.
  assert shared["num_params"] == static["num_params"]


def test_genotypes_outside_the_two_input_spaces_are_a_user_error(tmp_path):
  config = _tiny_child_config()
  cell = tmp_path / "cell.nb201"
  cell.write_text("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|"
                  "+|skip_connect~0|none~1|nor_conv_3x3~2|\n")
  with config.unlocked():
    config.genotype = str(cell)
  with pytest.raises(UserError, match="genotype_as_input"):
    trainer.train_and_evaluate(config, str(tmp_path / "run"))


def test_proxy_search_keeps_compiled_programs_in_its_workdir(tmp_path, monkeypatch):
  import jax
  from experiments import search
  from experiments.configs import evolution_cifar
  monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
  before = jax.config.jax_compilation_cache_dir
  try:
    jax.config.update("jax_compilation_cache_dir", None)
    search.make_evaluator(evolution_cifar.get_config(), str(tmp_path))
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla_cache")
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))
    search.make_evaluator(evolution_cifar.get_config(), str(tmp_path))
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "mine")  # the user's wins
  finally:
    jax.config.update("jax_compilation_cache_dir", before)
