"""What framing adds to a photo and is never the garment: frame lines along the border and pasted insets.

Sellers and retouching services send "before" panels cut from a composite: a thin grey or black frame line on
one or more sides, or a detail shot (the inside of the collar) pasted into a corner. A frame line would make the
whole border look like subject (figure and ground swap); an inset would be kept as a second garment piece.

* :func:`inner_frame` — the rectangle inside any frame lines: a border row (column) is a frame line when it
  differs from the rows just inside it across most of its length and only a thin band does so;
* :func:`rectangular_insets` — subject components that touch the frame and are solid axis-aligned rectangles
  (a pasted photo), when they are not the main subject.
"""

from __future__ import annotations

import cv2
import numpy as np

LINE_SHARE = 0.6  # a frame line differs from the inside over at least this share of its length
MAX_BAND = 0.04  # frame lines lie within this share of the short side from the border
STEP = 3  # compare each border line with the one this many pixels inward
DIFF = 12.0  # CIELAB distance that counts as different


def _line_rows(lab: np.ndarray, band: int) -> int:
    """How many rows at the top of ``lab`` are frame line (0 if none)."""
    h = lab.shape[0]
    last = -1
    for r in range(min(band, h - 2 * STEP - 1)):
        diff = np.linalg.norm(lab[r] - lab[r + STEP], axis=1)
        if float((diff > DIFF).mean()) >= LINE_SHARE:
            last = r
        elif last >= 0 and r > last + 1:
            break
    if last < 0:
        return 0
    # the rows just inside the line must look like the inside, not like more line (a garment filling the frame)
    inside = np.linalg.norm(lab[last + STEP] - lab[last + 2 * STEP], axis=1)
    if float((inside > DIFF).mean()) >= 0.5 * LINE_SHARE:
        return 0
    return last + 1 + 1  # the line and one row of its anti-aliased edge


def inner_frame(lab: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the photo inside its frame lines (the whole photo when it has none)."""
    h, w = lab.shape[:2]
    band = max(3, round(MAX_BAND * min(h, w)))
    top = _line_rows(lab, band)
    bottom = _line_rows(lab[::-1], band)
    left = _line_rows(np.transpose(lab, (1, 0, 2)), band)
    right = _line_rows(np.transpose(lab, (1, 0, 2))[::-1], band)
    if top + bottom >= h // 2 or left + right >= w // 2:
        return 0, h, 0, w
    return top, h - bottom, left, w - right


def rectangular_insets(subject: np.ndarray, min_extent: float = 0.88) -> np.ndarray:
    """Subject components touching the frame that are solid rectangles and not the largest component."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(subject.astype(np.uint8), connectivity=8)
    out = np.zeros(subject.shape, bool)
    if n <= 2:
        return out
    h, w = subject.shape
    areas = stats[1:, cv2.CC_STAT_AREA]
    largest = 1 + int(np.argmax(areas))
    for i in range(1, n):
        if i == largest:
            continue
        x, y, bw, bh, area = stats[i]
        touches = x == 0 or y == 0 or x + bw == w or y + bh == h
        if touches and area >= 0.9 * min_extent * bw * bh and min(bw, bh) >= 8:
            out |= labels == i
    return out
