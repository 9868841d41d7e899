"""Training-time augmentation: its keys defined once here, every backend in this package.

- `warp.py`: the backend-neutral warp (rotation, zoom, shifts and optional elastic distortion in
  one resampling) and `RandomWarp`, the layer that applies it inside a model (a GPU, or Keras on
  JAX or PyTorch);
- `layers.py`: the model that training sees (the network behind its augmentation layer), and
  Keras's own preprocessing layers;
- `tfdata.py`: the `tf.data` pipelines of a TensorFlow CPU run (affine, layers,
  ImageDataGenerator).

Validation and test data are never augmented.
"""

from __future__ import annotations

# Augmentation strengths use ImageDataGenerator's names and meaning: degrees, +-fraction of size.
DEFAULTS = {
    "rotation_range": 10.0,
    "zoom_range": 0.1,
    "width_shift_range": 0.1,
    "height_shift_range": 0.1,
    # Elastic distortion (Simard et al. 2003), not an ImageDataGenerator transform: the `affine`
    # backend only. alpha scales a displacement field smoothed over sigma pixels; 0 = off.
    "elastic_alpha": 0.0,
    "elastic_sigma": 4.0,
}

KEYS = tuple(DEFAULTS)  # what every backend reads from the hyperparameter dict
BACKENDS = ("affine", "layers", "idg", "none")  # --augment
