"""Training-time augmentation, every backend in this package; its strengths are rows of the
hyperparameter table (src/params.py).

- `warp.py`: the backend-neutral warp (rotation, zoom, shifts and optional elastic distortion in
  one resampling) and `RandomWarp`, the layer that applies it inside a model (a GPU, or Keras on
  JAX or PyTorch);
- `layers.py`: the model that training sees (the network behind its augmentation layer), and
  Keras's own preprocessing layers;
- `tfdata.py`: the `tf.data` pipelines of a TensorFlow CPU run (affine, layers,
  ImageDataGenerator).

Validation and test data are never augmented, nor the last `clean_epochs` of training
(`clean_epoch`).
"""

from __future__ import annotations

BACKENDS = ("affine", "layers", "idg", "none")  # --augment


def clean_epoch(params: dict, epochs: int) -> int | None:
    """The first epoch (from 0) that trains on the digits as they are, unwarped, from there to
    the end (`clean_epochs`); None: every epoch is augmented."""
    n = params.get("clean_epochs", 0)
    return max(0, epochs - n) if n else None
