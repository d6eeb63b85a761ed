"""Datasets: records and readers, the synthetic phantom, letterbox, augmentation, tf.data."""
