"""Runtime and entry points: input pipelines, the trainer, configs and CLIs."""
import os

# TensorFlow serves only tf.data here. Its import announces oneDNN custom ops on stderr
# on some CPUs, whatever TF_CPP_MIN_LOG_LEVEL says, which would break the CLIs'
# one-line errors; the ops themselves are never used.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
