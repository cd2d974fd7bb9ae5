"""Input pipelines (TFDS + tf.data) and the embedded offline dataset."""
