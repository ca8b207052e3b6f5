"""Where a face can be: the textured tiles of the first pass's input (a card, a page, a head) against the flat ones
(a blank image, a plain table, sky). The detection plan (:mod:`.finder`) searches finer only in the box around them."""

from __future__ import annotations

import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2

#: texture tiles: side in pixels of the first pass's input; a tile is textured when its mean absolute
#: difference between neighbouring gray pixels is above TEXTURE_FLAT (gray levels), and, when the image's median
#: tile is itself textured, above TEXTURE_OF_MEDIAN times it (so a noisy table is flat beside a card's print)
TEXTURE_TILE_PX = 16
TEXTURE_FLAT = 1.5
TEXTURE_OF_MEDIAN = 1.5
#: ... when at least this share of the tiles stands out of a textured background; otherwise every textured tile
TEXTURE_STANDING_OUT = 0.01
#: the box around the textured tiles is grown by this many tiles on each side
TEXTURE_MARGIN_TILES = 2


def textured_box(pixels: np.ndarray, tile: int = TEXTURE_TILE_PX) -> Box | None:
    """The box (pixels of ``pixels``) around the textured tiles of an RGB image, grown by a margin; None when
    every tile is flat (nothing there can hold a face)."""
    h, w = pixels.shape[:2]
    if h < tile or w < tile:
        return (0.0, 0.0, float(w), float(h))
    gray = pixels.astype(np.int16).sum(axis=2)  # 0..765: three times the gray level
    dx = np.abs(np.diff(gray, axis=1))[:-1, :]
    dy = np.abs(np.diff(gray, axis=0))[:, :-1]
    energy = (dx + dy).astype(np.float32) / 6.0  # mean of both, in gray levels
    rows, cols = (h - 1) // tile, (w - 1) // tile
    if rows == 0 or cols == 0:
        return (0.0, 0.0, float(w), float(h))
    tiles = energy[:rows * tile, :cols * tile].reshape(rows, tile, cols, tile).mean(axis=(1, 3))
    textured = tiles > TEXTURE_FLAT
    if not textured.any():
        return None
    median = float(np.median(tiles))
    if median > TEXTURE_FLAT:  # a textured background (a table's grain, sensor noise): what stands out of it
        standing_out = tiles > TEXTURE_OF_MEDIAN * median
        if standing_out.mean() >= TEXTURE_STANDING_OUT:
            textured = standing_out
        # else nothing stands out (texture everywhere, such as a busy scene): the whole textured image
    ys, xs = np.nonzero(textured)
    m = TEXTURE_MARGIN_TILES
    x1, x2 = max(0, xs.min() - m) * tile, min(w, (xs.max() + 1 + m) * tile)
    y1, y2 = max(0, ys.min() - m) * tile, min(h, (ys.max() + 1 + m) * tile)
    if x2 >= w - tile:
        x2 = w
    if y2 >= h - tile:
        y2 = h
    return (float(x1), float(y1), float(x2), float(y2))
