"""Figures of images and predictions, for TensorBoard and PNG files: a labelled grid of images and a confusion
matrix, readable for 10 and for 52 classes. Matplotlib's object API (no pyplot): no display, no global state."""

import math
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

MAX_CELL_TEXT = 26  # above this many classes, a cell is too small for its count: colours only


def image_grid(images: torch.Tensor, titles: Sequence[str], columns: int = 8, suptitle: str = "") -> Figure:
    """`images` N×C×H×W with values in [0, 1] (C is 1 or 3), each with its title under it."""
    rows = math.ceil(len(images) / columns)
    fig = Figure(figsize=(1.4 * columns, 1.6 * rows + (0.4 if suptitle else 0)), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, title in zip(axes.flat, images.clamp(0, 1).cpu(), titles, strict=False):
        if image.shape[0] == 1:
            ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(image.permute(1, 2, 0))
        ax.set_title(title, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def confusion_figure(matrix: torch.Tensor, class_names: Sequence[str], title: str) -> Figure:
    """Rows: true class, columns: predicted class. The colour is the fraction of the true class's images (so
    a rare class reads like a common one), the number in a cell its count, in white on dark cells."""
    n = len(class_names)
    counts = matrix.long()
    fractions = counts / counts.sum(1, keepdim=True).clamp(min=1)
    side = min(12.0, 2.5 + 0.5 * n)  # 10 classes: 7.5 in; 52: 12 in, 0.2 in a cell
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    shown = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax, shrink=0.8, label="fraction of the true class")
    ticks = range(n)
    font = 8 if n <= MAX_CELL_TEXT else 6
    ax.set_xticks(ticks, class_names, rotation=90, fontsize=font)
    ax.set_yticks(ticks, class_names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= MAX_CELL_TEXT:
        for row in range(n):
            for col in range(n):
                count = int(counts[row, col])
                if count:
                    colour = "white" if fractions[row, col] > 0.5 else "black"
                    ax.text(col, row, count, ha="center", va="center", fontsize=7, color=colour)
    return fig
