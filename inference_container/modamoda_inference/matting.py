"""Closed-form alpha matting (Levin, Lischinski and Weiss, 2008) on a thin unknown band.

Given an image and a trimap (known foreground, known background, unknown), the alpha of the unknown pixels
minimises ``a' L a`` where ``L`` is the matting Laplacian built from 3x3 windows under the colour-line model:
inside each window, alpha is an affine function of the colour. Only windows that touch an unknown pixel
contribute, and only the rows of unknown pixels are kept, so the cost follows the length of the garment's outline
(tens of thousands of unknowns), not the size of the image. The reduced system
``L_UU a_U = -L_UK a_K`` is symmetric positive definite and is solved by Jacobi-preconditioned conjugate
gradients from the binary mask as the starting point.

numpy and scipy only: no JIT, nothing to compile or warm up beyond scipy's import.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import sparse
from scipy.sparse.linalg import cg

_CHUNK = 16384  # windows per block when building the Laplacian


@dataclass(frozen=True)
class MattingSettings:
    band: int = 3  # unknown band half-width around the mask edge, in pixels of the matted image
    epsilon: float = 1e-5  # regularisation of the window covariance (colours in [0, 1])
    max_iter: int = 250
    rtol: float = 1e-5


def trimap_from_mask(
    mask: np.ndarray, band: int, *, inner: int | None = None, unknown_extra: np.ndarray | None = None
) -> np.ndarray:
    """0 (background), 1 (foreground) or 0.5 (unknown: ``band`` pixels outside the edge, ``inner`` (default
    ``band``) inside it, and ``unknown_extra``)."""
    m8 = mask.astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    inner = band if inner is None else inner
    k_in = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inner + 1, 2 * inner + 1))
    fg = cv2.erode(m8, k_in, borderType=cv2.BORDER_REPLICATE) > 0
    bg = cv2.dilate(m8, kernel, borderType=cv2.BORDER_REPLICATE) == 0
    trimap = np.full(mask.shape, 0.5, np.float32)
    trimap[fg] = 1.0
    trimap[bg] = 0.0
    if unknown_extra is not None:
        trimap[unknown_extra] = 0.5
    return trimap


def closed_form_alpha(
    image: np.ndarray,
    trimap: np.ndarray,
    settings: MattingSettings | None = None,
    initial: np.ndarray | None = None,
) -> np.ndarray:
    """Alpha (H, W) float32 in [0, 1] for ``image`` (H, W, 3) float32 in [0, 1] and ``trimap`` (0 / 0.5 / 1).

    Known pixels keep their trimap value; unknown pixels get the closed-form solution.
    """
    s = settings or MattingSettings()
    h, w = trimap.shape
    known = trimap != 0.5
    alpha = np.where(trimap >= 0.75, 1.0, 0.0).astype(np.float32)
    unknown = ~known
    # Windows (3x3, centre away from the image border) that touch an unknown pixel.
    centres = cv2.dilate(unknown.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    centres[0, :] = centres[-1, :] = False
    centres[:, 0] = centres[:, -1] = False
    cy, cx = np.nonzero(centres)
    n_unknown = int(unknown.sum())
    if n_unknown == 0 or cy.size == 0:
        return alpha

    uid = np.full(h * w, -1, np.int64)
    flat_unknown = np.flatnonzero(unknown)
    uid[flat_unknown] = np.arange(flat_unknown.size)

    offsets = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], np.int64)
    img = image.reshape(-1, 3).astype(np.float64)
    known_alpha = alpha.ravel().astype(np.float64)
    eye3 = (s.epsilon / 9.0) * np.eye(3)
    m_rows: list[np.ndarray] = []
    m_cols: list[np.ndarray] = []
    m_vals: list[np.ndarray] = []
    rhs = np.zeros(n_unknown)
    for start in range(0, cy.size, _CHUNK):  # in chunks: the 9x9 blocks of all windows at once are large
        wy, wx = cy[start : start + _CHUNK], cx[start : start + _CHUNK]
        idx = (wy[:, None] + offsets[None, :, 0]) * w + (wx[:, None] + offsets[None, :, 1])  # (N, 9)
        win = img[idx]  # (N, 9, 3)
        x = win - win.mean(axis=1, keepdims=True)
        cov = np.matmul(x.transpose(0, 2, 1), x) / 9.0 + eye3
        g = (1.0 + np.matmul(np.matmul(x, np.linalg.inv(cov)), x.transpose(0, 2, 1))) / 9.0  # (N, 9, 9)
        local = (np.eye(9)[None] - g).ravel()
        rows = np.repeat(idx, 9, axis=1).ravel()
        cols = np.tile(idx, (1, 9)).ravel()
        r_u = uid[rows]
        keep = r_u >= 0
        r_u, cols, vals = r_u[keep], cols[keep], local[keep]
        c_u = uid[cols]
        in_u = c_u >= 0
        m_rows.append(r_u[in_u].astype(np.int32))
        m_cols.append(c_u[in_u].astype(np.int32))
        m_vals.append(vals[in_u])
        out_u = ~in_u
        rhs -= np.bincount(r_u[out_u], weights=vals[out_u] * known_alpha[cols[out_u]], minlength=n_unknown)
    matrix = sparse.csr_matrix(
        (np.concatenate(m_vals), (np.concatenate(m_rows), np.concatenate(m_cols))),
        shape=(n_unknown, n_unknown),
    )
    del m_rows, m_cols, m_vals

    diag = matrix.diagonal()
    precond = sparse.diags(1.0 / np.maximum(diag, 1e-12))
    if initial is None:
        x0 = np.full(n_unknown, 0.5)
    else:
        x0 = np.clip(initial.ravel()[flat_unknown].astype(np.float64), 0.0, 1.0)
    solution, _info = cg(matrix, rhs, x0=x0, rtol=s.rtol, maxiter=s.max_iter, M=precond)
    out = alpha.ravel()
    out[flat_unknown] = np.clip(solution, 0.0, 1.0)
    return out.reshape(h, w)
