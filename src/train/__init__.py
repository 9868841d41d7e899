"""Training: device and precision (`device`), loss and `model.fit` (`fit`), optimiser and
schedule (`optimizer`), the engine interface (`engine`) and both engines (`sequential`,
`batched` + `batched_program`), the run's folds and full fits (`folds`), predicting and
averaging (`ensemble`), and Keras imported without TensorFlow's start-up log (`quiet`)."""
