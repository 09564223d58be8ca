"""SAM's prompts, made automatically from a cheap foreground estimate: the foreground's box, and a grid of
single points over that box (on the garment, the form, a hanger and the backdrop between them alike — each
point asks "what is here", CLIP says what it is)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Prompts:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's pixels
    points: np.ndarray  # (P, 2) float: x, y of single-point prompts


def from_foreground(foreground: np.ndarray, grid: int, margin: float = 0.02) -> Prompts:
    """The box of ``foreground`` ((h, w) bool; empty: the frame inset by 5 %) grown by ``margin`` of the long
    side and clipped to the frame, and ``grid`` x ``grid`` points at the centres of the box's cells."""
    if grid < 1:
        raise ValueError("grid must be at least 1")
    h, w = foreground.shape
    rows, cols = np.flatnonzero(foreground.any(axis=1)), np.flatnonzero(foreground.any(axis=0))
    if rows.size == 0:
        x0, y0, x1, y1 = 0.05 * w, 0.05 * h, 0.95 * w, 0.95 * h
    else:
        pad = margin * max(h, w)
        x0, x1 = max(0.0, cols[0] - pad), min(float(w), cols[-1] + 1 + pad)
        y0, y1 = max(0.0, rows[0] - pad), min(float(h), rows[-1] + 1 + pad)
    steps = (np.arange(grid) + 0.5) / grid
    xs, ys = x0 + steps * (x1 - x0), y0 + steps * (y1 - y0)
    gx, gy = np.meshgrid(xs, ys)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    return Prompts(box=(float(x0), float(y0), float(x1), float(y1)), points=points)
