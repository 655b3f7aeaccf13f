"""Figures of images and predictions, for TensorBoard and PNG files: a labelled grid of images and a confusion
matrix, readable for 10 and for 52 classes. Matplotlib's object API (no pyplot): no display, no global state."""

import math
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

MAX_CELL_TEXT = 26  # above this many classes, a cell is too small for its count: colours only


def image_grid(images: torch.Tensor, titles: Sequence[str], columns: int = 8, suptitle: str = "") -> Figure:
    """`images` N×C×H×W with values in [0, 1] (C is 1 or 3), each with its title under it. One picture of all the
    images in one axes: a subplot per image made it take a second to draw 64 (drawn once in every training run)."""
    n, channels, height, width = images.shape
    rows = math.ceil(n / columns)
    gap, band = max(1, width // 8), height // 2  # between images; under each, for its title
    sheet = torch.ones(channels, rows * (height + band), columns * (width + gap))
    for i, image in enumerate(images.clamp(0, 1).cpu()):
        top, left = (i // columns) * (height + band), (i % columns) * (width + gap)
        sheet[:, top : top + height, left : left + width] = image
    fig = Figure(figsize=(1.4 * columns, 1.6 * rows + (0.4 if suptitle else 0)))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 - (0.4 / fig.get_figheight() if suptitle else 0)))
    ax.set_axis_off()
    if channels == 1:
        ax.imshow(sheet[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(sheet.permute(1, 2, 0), interpolation="nearest")
    for i, title in enumerate(titles):
        x = (i % columns) * (width + gap) + width / 2
        y = (i // columns) * (height + band) + height + band * 0.15
        ax.text(x, y, title, ha="center", va="top", fontsize=8)
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
