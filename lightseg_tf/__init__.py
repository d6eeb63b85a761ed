"""lightseg_tf: lightweight, interpretable multiclass fetal-ultrasound segmentation.

Importing the package pins the Keras flavour before TensorFlow is imported anywhere:
tensorflow-model-optimization (QAT) rejects Keras 3 models, so the whole toolkit runs on
tf-keras 2.x (``import tf_keras as keras``). See ``../shared/DESIGN.md`` and the README.
"""

import os

# setdefault: a user who deliberately set these keeps their choice (and owns the result).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
