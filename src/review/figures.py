"""The report's figures, each a PNG in the run folder: curves, confusion, errors, class shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import ConfusionMatrixDisplay

from src.outputs.files import pyplot, write_png

plt = pyplot()

CURVES = (("loss", "loss"), ("accuracy", "accuracy"), ("learning_rate", "learning rate"))


def learning_curves(histories: dict[str, dict], path: Path) -> str:
    """Per model: train (dashed) and validation (solid) loss and accuracy, and the learning rate.

    `histories` maps a label ("fold 1", "full fit 1") to its history; a model without
    validation (a full fit) draws its training curves solid instead.
    """
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    validated = all("val_loss" in h for h in histories.values())
    lowest = []
    for k, (label, history) in enumerate(histories.items()):
        color = colors[k % len(colors)]
        epochs = np.arange(1, len(history["loss"]) + 1)
        for ax, (key, title) in zip(axes, CURVES, strict=True):
            if key in history:
                dashed = validated and key != "learning_rate"  # the training side of a pair
                style = {"linestyle": "--", "alpha": 0.6} if dashed else {}
                ax.plot(epochs, history[key], color=color, label=None if validated else label,
                        **style)  # fmt: skip
            if f"val_{key}" in history:
                ax.plot(epochs, history[f"val_{key}"], color=color, label=label)
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        lowest.append(min(history["val_accuracy" if validated else "accuracy"]))
    axes[0].set_yscale("log")
    axes[1].set_ylim(max(0.0, min(lowest) - 0.01), 1.0)
    axes[1].legend(title="validation (train dashed)" if validated else "training (no validation)",
                   fontsize="small")  # fmt: skip
    return write_png(fig, path)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, path: Path) -> str:
    """Counts of true label (rows) against predicted label (columns), out of fold."""
    fig, ax = plt.subplots(figsize=(7, 6))
    ConfusionMatrixDisplay.from_predictions(labels, predicted, ax=ax, colorbar=False,
                                            cmap="Blues")  # fmt: skip
    ax.set_title("out-of-fold confusion matrix")
    return write_png(fig, path)


def wrong_gallery(
    images: np.ndarray, labels: np.ndarray, predicted: np.ndarray, confidence: np.ndarray,
    rows: np.ndarray, path: Path,
) -> str:  # fmt: skip
    """The given misclassified digits, each titled with its row, true and predicted label."""
    cols = min(8, max(1, len(images)))
    lines = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(lines, cols, figsize=(1.6 * cols, 1.9 * lines), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, true, pred, conf, row in zip(
        axes.flat, images, labels, predicted, confidence, rows, strict=False
    ):
        ax.imshow(image.squeeze(), cmap="gray_r")
        ax.set_title(f"row {row}\n{true} → {pred} ({conf:.2f})", fontsize=8)
    if not len(images):
        axes.flat[0].text(0.5, 0.5, "no out-of-fold errors", ha="center", va="center")
    return write_png(fig, path)


def class_distribution(predicted: np.ndarray, train_labels: np.ndarray, classes: np.ndarray,
                       path: Path) -> str:  # fmt: skip
    """Share of each class among the test predictions, beside its share in train.csv."""
    test_share = np.array([np.mean(predicted == c) for c in classes])
    train_share = np.array([np.mean(train_labels == c) for c in classes])
    at = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(8, 0.35 * len(classes)), 3.5))
    ax.bar(at - 0.2, test_share, width=0.4, label="test predictions")
    ax.bar(at + 0.2, train_share, width=0.4, label="train.csv labels", alpha=0.6)
    ax.set_xticks(at, [str(c) for c in classes])
    ax.set_xlabel("label")
    ax.set_ylabel("share")
    ax.legend()
    ax.set_title("class distribution of the test predictions")
    return write_png(fig, path)
