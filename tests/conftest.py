"""Test set-up: 4 simulated CPU devices, set before anything imports JAX."""
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TFDS_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", ".tfds-test"))

# XLA:CPU compiles the default threefry generator very slowly for large shapes
# (a tiny network's eager init: 53 s threefry vs 6 s rbg). Set through the
# environment so that CLI subprocesses started by tests use the same generator.
os.environ.setdefault("JAX_DEFAULT_PRNG_IMPL", "rbg")
