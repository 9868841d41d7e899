"""Training: device and precision (`device`), loss and `model.fit` (`fit`), optimiser and
schedule (`optimizer`), the engine interface (`engine`) and both engines (`sequential`,
`batched` + `batched_program`), the run's folds and full fits (`folds`), predicting and
averaging (`ensemble`), and Keras imported without TensorFlow's start-up log (`quiet`)."""

# The oldest JAX on which the batched engine's step is checked against Keras's own (the CPU-JAX
# checks in tests/jax_checks.py; on older ones it drifted beyond their bound). Here, not in
# engines.py, so that a Kaggle notebook's script can be written without loading Keras.
BATCHED_JAX = (0, 10, 2)
