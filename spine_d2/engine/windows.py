"""Windows along the spine for a second, high-resolution pass: where to look, and back again.

Image frame: pixels of the photo, x right, y down. From the first pass's vertebra boxes, the
spine's axis is fitted (principal direction of the box centres); windows are rectangles aligned
with that axis, so that in a window the spine stands upright, each covering a stretch of the
spine with overlap and mapped onto `size` pixels. The zoom brings the median vertebra to a set
height (`test.highres.target_px`), one the model saw often in training: windows that the spine
fills across show bodies larger than any training photo, and the model fails on them
(benchmarks/README.md). A `Window` holds the affine map image → window; `to_image` takes points
back, `mask_to_image` a (soft) mask.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spine_d2.polygons import mask_box


@dataclass(frozen=True)
class Window:
    A: np.ndarray  # 2×3 affine, image px → window px
    size: tuple[int, int]  # window (height, width) px

    @property
    def zoom(self) -> float:
        """Window pixels per image pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.A[:, :2]))))

    def turned(self, deg: float) -> "Window":
        """The same window turned by `deg` degrees about its centre (counter-clockwise as the
        window shows it): the model's look at the same bodies from another angle."""
        h, w = self.size
        M = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
        A = np.concatenate([M[:, :2] @ self.A[:, :2], (M[:, :2] @ self.A[:, 2] + M[:, 2])[:, None]], axis=1)
        return Window(A, self.size)

    def depth(self, point) -> float:
        """How far the image point (x, y, px) lies inside the window: its distance to the nearest
        edge, window px (negative outside)."""
        (x, y), = self.to_window(point)
        h, w = self.size
        return float(min(x, w - x, y, h - y))

    def box_of(self, points: np.ndarray) -> np.ndarray | None:
        """x0, y0, x1, y1 (window px) around the image `points` (N, 2) mapped into the window, or
        None where the window cuts it."""
        p = self.to_window(points)
        (x0, y0), (x1, y1) = p.min(axis=0), p.max(axis=0)
        h, w = self.size
        return None if x0 < 0 or y0 < 0 or x1 > w or y1 > h else np.array([x0, y0, x1, y1])

    def columns(self, boxes, margin: float) -> tuple["Window", np.ndarray]:
        """The part of the window between the columns `boxes` (N, 4: x0 y0 x1 y1, window px) span
        and `margin` median box heights either side, its full height, and the boxes in it: the same
        look at the same scale with fewer pixels."""
        b = np.asarray(boxes, float).reshape(-1, 4)
        h, w = self.size
        m = margin * float(np.median(b[:, 3] - b[:, 1]))
        x0, x1 = max(int(np.floor(b[:, 0].min() - m)), 0), min(int(np.ceil(b[:, 2].max() + m)), w)
        A = self.A.copy()
        A[0, 2] -= x0
        return Window(A, (h, x1 - x0)), b - np.array([x0, 0, x0, 0], float)

    def crop(self, image: np.ndarray) -> np.ndarray:
        h, w = self.size
        return cv2.warpAffine(image, self.A, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def to_window(self, points) -> np.ndarray:
        """(N, 2) image px → window px."""
        return np.asarray(points, dtype=float).reshape(-1, 2) @ self.A[:, :2].T + self.A[:, 2]

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) window px → image px."""
        inv = cv2.invertAffineTransform(self.A)
        p = np.asarray(points, dtype=float).reshape(-1, 2)
        return p @ inv[:, :2].T + inv[:, 2]

    def mask_to_image(self, mask: np.ndarray, shape: tuple[int, int], above: float | None = None) -> np.ndarray:
        """A window's (soft or boolean) mask as a float32 mask of the image's `shape` (H, W), or with
        `above` a boolean one of where it exceeds that; only the image rectangle its non-zero pixels
        map into is warped (the rest is 0 either way)."""
        h, w = shape
        m = mask.astype(np.float32)
        out = np.zeros((h, w), np.float32 if above is None else bool)
        box = mask_box(m)
        if box is None:
            return out
        bx0, by0, bx1, by1 = box
        ends = self.to_image(np.array([[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]], float))
        x0, y0 = (max(int(np.floor(v)) - 2, 0) for v in ends.min(axis=0))
        x1, y1 = min(int(np.ceil(ends[:, 0].max())) + 2, w), min(int(np.ceil(ends[:, 1].max())) + 2, h)
        if x1 <= x0 or y1 <= y0:
            return out
        A = self.A.copy()
        A[:, 2] += A[:, :2] @ np.array([x0, y0], float)  # the sub-rectangle's origin
        part = cv2.warpAffine(m, A, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT)
        out[y0:y1, x0:x1] = part if above is None else part > above
        return out


def spine_axis(centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit axis pointing down the image, centroid) of vertebra centres (N, 2)."""
    c = np.asarray(centres, dtype=float).reshape(-1, 2)
    mid = c.mean(axis=0)
    if len(c) < 2:
        return np.array([0.0, 1.0]), mid
    _, _, vt = np.linalg.svd(c - mid, full_matrices=False)
    axis = vt[0] if vt[0][1] >= 0 else -vt[0]
    return axis / np.linalg.norm(axis), mid


def spine_windows(boxes: np.ndarray, size: tuple[int, int], target_px: float, first_scale: float,
                  min_gain: float = 1.25, max_windows: int = 6, overlap: float = 0.25,
                  margin: float = 1.0) -> list[Window]:
    """Windows of `size` (h, w) px along the spine of the vertebra `boxes` (N, 4: x0 y0 x1 y1, image
    px), zoomed so that the median box height becomes `target_px` window px.

    `first_scale`: input px per image px of the first pass. No windows (an empty list) when the
    zoom would enlarge the vertebrae less than `min_gain` times, or when fewer than two boxes give
    no axis. Along the axis the spine's extent grows by `margin` box heights at each end and is cut
    into as few windows as cover it, overlapping by `overlap`; past `max_windows` the zoom is
    lowered until that many cover it."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    if len(b) < 2:
        return []
    centres = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)
    axis, mid = spine_axis(centres)
    across = np.array([axis[1], -axis[0]])
    corners = np.concatenate([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]])
    along_c, across_c = (corners - mid) @ axis, (corners - mid) @ across
    step = float(np.median(b[:, 3] - b[:, 1]))
    s0, s1 = along_c.min() - margin * step, along_c.max() + margin * step
    off = (across_c.max() + across_c.min()) / 2
    h, w = size
    zoom = target_px / step
    n = max(1, int(np.ceil(((s1 - s0) * zoom / h - overlap) / (1 - overlap))))
    if n > max_windows:
        n = max_windows
        zoom = h * (n - (n - 1) * overlap) / (s1 - s0)
    if zoom < min_gain * first_scale:
        return []
    length = h / zoom  # image px along the axis per window
    start0 = (s0 + s1) / 2 - length * (n - (n - 1) * overlap) / 2
    R = np.stack([across, axis])  # image → (across, along) coordinates
    out = []
    for i in range(n):
        centre = mid + axis * (start0 + i * length * (1 - overlap) + length / 2) + across * off
        A = np.zeros((2, 3))
        A[:, :2] = zoom * R
        A[:, 2] = np.array([w / 2, h / 2]) - zoom * R @ centre
        out.append(Window(A, (h, w)))
    return out


def spine_strip(boxes: np.ndarray, shape: tuple[int, int], turn_deg: float = 0.0, margin: float = 2.0) -> Window:
    """The columns of an image of `shape` (h, w) that the vertebra `boxes` (N, 4: x0 y0 x1 y1, image
    px) span, `margin` median box heights wider each side and by what a turn of `turn_deg` degrees
    about the strip's centre sweeps in; image px (no zoom), as tall as the image's longer side and
    centred on the image vertically (above and below a landscape image: black). Fitted into the
    model's square input with the aspect kept, it is shown at the scale the whole image is, with
    fewer pixels."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    h, w = int(shape[0]), int(shape[1])
    side = max(h, w)
    step = float(np.median(b[:, 3] - b[:, 1]))
    reach = np.abs(b[:, [1, 3]] - h / 2).max() * np.tan(np.radians(abs(turn_deg)))
    x0, x1 = b[:, 0].min() - margin * step - reach, b[:, 2].max() + margin * step + reach
    width = int(min(np.ceil(x1 - x0), side))
    A = np.array([[1.0, 0.0, width / 2 - (x0 + x1) / 2], [0.0, 1.0, side / 2 - h / 2]])
    return Window(A, (side, width))


def whole_turned(shape: tuple[int, int], deg: float) -> Window:
    """The whole image of `shape` (h, w) turned by `deg` degrees about its centre (counter-clockwise
    as shown) onto a canvas just large enough to hold all of it; image px (no zoom), the canvas's
    corners black."""
    h, w = int(shape[0]), int(shape[1])
    A = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    c, s = abs(A[0, 0]), abs(A[0, 1])
    cw, ch = int(np.ceil(h * s + w * c)), int(np.ceil(h * c + w * s))
    A[:, 2] += np.array([cw / 2 - w / 2, ch / 2 - h / 2])
    return Window(A, (ch, cw))
