"""The classic Digit Recognizer notebook's CNN, as published: the recipe this project must beat.

2x Conv2D(32, 5x5) -> pool -> 2x Conv2D(64, 3x3) -> pool -> Dense(256), dropout .25/.25/.5,
RMSprop(1e-3), ReduceLROnPlateau(val_accuracy, patience 3, factor .5, min_lr 1e-5), Keras's
ImageDataGenerator (rotation 10, zoom .1, shifts .1), batch 86, 30 epochs, one 90/10 split of
the rows it is given. On a backend without TensorFlow (`KERAS_BACKEND=jax` on a GPU),
ImageDataGenerator does not exist: the same four transforms then run inside the model
(`RandomWarp`, which a GPU runs far faster than Keras's preprocessing layers).
"""

from __future__ import annotations

import numpy as np

EPOCHS, BATCH = 30, 86


def fit_classic(x: np.ndarray, y: np.ndarray, seed: int, *, verbose: int = 2):
    """Train the notebook's model on images `x` (uint8, N x 28 x 28 x 1) and class indices `y`;
    returns it behind a 1/255 rescaling, so it predicts raw images as the project's models do."""
    import keras
    from keras import layers
    from sklearn.model_selection import train_test_split

    from src.model.augment.warp import RandomWarp
    from src.params import default_params
    from src.train.device import BACKEND

    classes = int(y.max()) + 1
    x_train, x_val, y_train, y_val = train_test_split(
        x.astype("float32") / 255.0, keras.utils.to_categorical(y, classes), test_size=0.1,
        random_state=seed,
    )  # fmt: skip
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    idg = BACKEND == "tensorflow"
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        *([] if idg else [RandomWarp(default_params("cnn"), seed=seed)]),
        layers.Conv2D(32, 5, padding="same", activation="relu"),
        layers.Conv2D(32, 5, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2, strides=2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(classes, activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3, rho=0.9, epsilon=1e-8),
                  loss="categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="val_accuracy", patience=3, verbose=0, factor=0.5, min_lr=1e-5
    )
    # The notebook's steps_per_epoch=len(x)//86 (Keras 2's endless generator) would, in Keras 3,
    # leave every other epoch nearly empty (the flow is not restarted); one pass per epoch is
    # what the notebook trained.
    if idg:
        import tensorflow as tf

        datagen = tf.keras.preprocessing.image.ImageDataGenerator(
            rotation_range=10, zoom_range=0.1, width_shift_range=0.1, height_shift_range=0.1
        )
        train = {"x": datagen.flow(x_train, y_train, batch_size=BATCH)}
    else:
        train = {"x": x_train, "y": y_train, "batch_size": BATCH, "shuffle": True}
    model.fit(**train, epochs=EPOCHS, validation_data=(x_val, y_val), callbacks=[plateau],
              verbose=verbose)  # fmt: skip
    return keras.Sequential([keras.Input((28, 28, 1)), layers.Rescaling(1 / 255.0), model])
