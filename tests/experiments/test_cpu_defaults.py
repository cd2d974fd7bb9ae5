"""The XLA:CPU process defaults: applied where they should be, and results unchanged.

Each measurement runs in a fresh subprocess, since allocator settings only take effect
before the backend starts.
"""
import json
import os
import subprocess
import sys

import numpy as np

from experiments import cpu_defaults

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Applies the defaults, re-faults a freed 64 MiB buffer, then takes a tiny network's
# train-step gradients and saves them.
_CHILD = r"""
import ctypes, json, resource, sys
import numpy as np
from experiments import cpu_defaults
applied = cpu_defaults.apply()

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def touch_and_free(size):
  buf = libc.malloc(size); ctypes.memset(buf, 1, size); libc.free(buf)

def faults_of_fresh_buffer(size=64 << 20):
  touch_and_free(size)  # warm the heap, then count the faults of the same size again
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  touch_and_free(size)
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults = faults_of_fresh_buffer()
import jax, jax.numpy as jnp, optax
from flax import nnx
from models.zoo import catalog as zoo
model = zoo.build_model("darts_v2_cifar", image_size=8, rngs=nnx.Rngs(0), layers=3, filters=4,
                        aux_head=False)
rng = np.random.default_rng(0)
images = jnp.asarray(rng.normal(size=(4, 8, 8, 3)).astype(np.float32))
labels = jnp.asarray(rng.integers(0, 10, 4))

@nnx.jit
def grads(model):
  def loss(model):
    logits = model(images, train=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return nnx.grad(loss)(model)

leaves = jax.tree.leaves(nnx.state(grads(model), nnx.Param))
np.savez(sys.argv[1], *[np.asarray(x) for x in leaves])
print(json.dumps({"applied": applied, "faults": faults}))
"""


def _run_child(out_file, **env):
  full_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
  full_env.update(env)
  proc = subprocess.run([sys.executable, "-c", _CHILD, str(out_file)], cwd=ROOT, env=full_env,
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  with np.load(out_file) as f:
    return report, [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def test_defaults_apply_on_cpu_and_leave_gradients_unchanged(tmp_path):
  tuned, g_tuned = _run_child(tmp_path / "tuned.npz", JAX_PLATFORMS="cpu")
  plain, g_plain = _run_child(tmp_path / "plain.npz", JAX_PLATFORMS="cpu",
                              **{cpu_defaults.OPT_OUT: "0"})
  assert tuned["applied"] == {"malloc": True, "reason": "applied"}
  assert plain["applied"]["malloc"] is False
  # A freed 64 MiB buffer comes back without page faults (16,384 4-KiB pages otherwise).
  assert tuned["faults"] < 1000 < plain["faults"]
  assert len(g_tuned) == len(g_plain) > 10
  for a, b in zip(g_tuned, g_plain):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_left_alone_off_cpu_or_when_the_user_tunes_malloc():
  assert cpu_defaults.runs_on_cpu({"JAX_PLATFORMS": "cpu"})
  assert not cpu_defaults.runs_on_cpu({"JAX_PLATFORMS": "cuda,cpu"})
  assert cpu_defaults.user_tunes_malloc({"MALLOC_ARENA_MAX": "4"})
  assert cpu_defaults.user_tunes_malloc({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"})
  assert cpu_defaults.user_tunes_malloc({"LD_PRELOAD": "libjemalloc.so.2"})
  assert not cpu_defaults.user_tunes_malloc({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX"})
