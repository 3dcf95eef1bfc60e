"""Rectify a photo: estimate how it is rotated and skewed relative to the radiograph it shows; image frame, px.

A phone photo of a monitor is a pinhole camera's view of a plane: the screen, with the viewer's
panels and the film on it, whose straight borders all run along the radiograph's axes.
`estimate_frame` takes the long straight lines of the photo (`spine_d2.measure.photo_lines`:
near-horizontal and near-vertical; tangles of lines at different angles, as bones and text make,
are dropped) and explains them with a camera:

- **perspective** (`spine_d2.measure.camera.fit_camera`): the camera's rotation R (and focal
  length f, principal point at the image centre) under which the lines of each direction meet at
  their vanishing point K·r1 or K·r2 — a consensus over minimal line sets at a few phone focal
  lengths, refined by least squares; f moves from the phone prior (`focal_prior`, 26 mm-equivalent)
  only where the lines fix it. The rectifying homography is then K·[r1 r2 t] (any t: the rest is
  scale and shift). It needs `min_lines` fitted lines in both directions; a fit resting on a single
  line in one direction is trusted only for views within `max_view_deg` / 2 of head-on;
- **rotation**: when a head-on view explains nearly as many lines (`prefer_rotation`), the simpler
  model wins (screenshots, square-on photos): a rotation about the image centre;
- **the image's axes** (`_square`): either model's correction is dropped for a head-on view when
  two or more lines lie on the image's axes and the correction's lines off them are a single line
  or one object's edges: a screenshot's viewer panels against a bone's edge or a
  humerus's two cortices, which a camera or a rotation otherwise explains as a screen's borders;
- with `aspect` given, the older four-border quadrilateral of that width:height; fewer borders that
  agree → a rotation;
- **opposite borders** (`paired_borders`): where neither model is taken and the borders disagree,
  but they are opposite pairs only (top and bottom, left and right) and no long line lies on the
  pixel grid (`on_the_grid`: a screenshot), a rotation by the pairs' mean tilt, confidence low: a
  view off head-on tilts the two of a pair opposite ways;
- the bones the model found (`bones`): a line lying over them is a bone's edge, not a border, and
  is left out (`bone_share`);
- nothing, or lines no camera explains → no correction (`trusted=False`): angles stay in the image
  frame, which is right for screenshots and untouched films.

Every estimate says how sure it is (`confidence`, in `describe()`'s plain words, which reach the
notes of every output): a perspective fit is refitted at the other ends of what its lines leave
open — a phone's other lenses when the lines do not fix f, the principal point where a crop of up
to `crop` of each side would have put it — and `uncertainty_deg` is the most any direction's angle
moves under the two together (the sum of each's). When either alone moves it by more than
`max_spread_deg` (`max_spread_unchecked_deg` for a fit to 3 lines, which no fourth line checks)
the view is not fixed and the photo is measured in the image frame, unless `open_view_min_lines`
lines agree on a view within `max_view_deg` / 2 of head-on (taken, confidence `low`). Otherwise
`high` (5 or more lines, uncertainty ≤ 1.5°) or `medium`; `low` when long lines left out of the fit run elsewhere,
two in each direction (a photo of a photo: a print's edges around the film's, which no single
pinhole view makes; more often a humerus's cortices and the spine's posterior elements): the fit
is taken all the same and says so, since the image frame keeps the whole of the photo's keystone
(benchmarks/README.md, session 61), but only for a view within `max_view_deg` / 2 of head-on (a
steeper one was as often a humerus taken for the screen's horizontals).

`H` maps the rectified frame → image frame, the same direction as the phantom's stored
homography (`spine_d2.frames`, whose `frame_error` compares an estimate with a known one); it
equals the radiograph frame up to scale and shift, which no angle depends on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from spine_d2.frames import apply_homography, rotation_deg
from spine_d2.measure.camera import CameraFit, Line, camera_homography, fit_camera, fit_spread
from spine_d2.measure.config import FrameConfig
from spine_d2.measure.instances import Instance, bones_mask
from spine_d2.measure.photo_lines import axis_family, borders, find_lines, intersect, over_bones, uncluttered


@dataclass
class FrameEstimate:
    """The estimated radiograph(rectified)→image homography, whether to trust it, and why."""

    H: np.ndarray = field(default_factory=lambda: np.eye(3))
    trusted: bool = False
    kind: str = "none"               # none | rotation | perspective | given
    rotation_deg: float = 0.0        # in-plane rotation at the image centre, CCW on screen positive
    reason: str = ""
    corners: np.ndarray | None = None  # the quadrilateral found (image frame), TL, TR, BR, BL
    edges: list = field(default_factory=list)  # the photo's long straight lines near its axes (`Line`s), fitted or not
    spread: dict = field(default_factory=dict)  # degrees the correction could move: focal, centre
    confidence: str = ""             # high | medium | low (not trusted) | given; "" when nothing was fitted
    uncertainty_deg: float = 0.0     # the largest of `spread`

    def describe(self) -> str:
        """One line in plain words: the frame used, how sure, why."""
        if not self.trusted:
            return f"frame: image, not corrected ({self.reason or 'no correction'})"
        how = f"frame: radiograph via {self.kind} correction, rotation {self.rotation_deg:+.2f}°"
        if self.confidence in ("", "given"):
            return how
        left = (f"; an unknown lens or crop could move angles by up to {self.uncertainty_deg:.1f}°"
                if self.kind == "perspective" else "")
        return f"{how}, confidence {self.confidence} ({self.reason}{left})"


def given_frame(H: Any, image_shape: Sequence[int] | None = None) -> FrameEstimate:
    """A known radiograph→image homography (e.g. the phantom's) as a trusted estimate."""
    H = np.asarray(H, dtype=float).reshape(3, 3)
    at = None if image_shape is None else _centre_in_source(H, image_shape)
    return FrameEstimate(H, True, "given", rotation_deg(H, at), "given homography", confidence="given")


def _centre_in_source(H: np.ndarray, image_shape: Sequence[int]) -> np.ndarray:
    h, w = image_shape[:2]
    return apply_homography(np.linalg.inv(H), [[w / 2, h / 2]])[0]


def _gray(image: np.ndarray) -> np.ndarray | None:
    img = np.asarray(image)
    if img.ndim == 3:
        return cv2.cvtColor(img[..., :3].astype(np.uint8), cv2.COLOR_BGR2GRAY)
    return img.astype(np.uint8) if img.ndim == 2 else None


def estimate_frame(image: np.ndarray, cfg: FrameConfig | Mapping | None = None,
                   bones: np.ndarray | None = None) -> FrameEstimate:
    """Estimate the rectified(radiograph)→image homography of a photo (see the module docstring).

    `bones` (H×W bool, image frame; `frame_bones`): where the vertebrae and femoral heads lie; with
    `cfg.bone_share` a line lying over them is a bone's edge and is left out of the fit
    (`photo_lines.over_bones`): a few such edges otherwise make a screenshot into a screen seen
    20–30° off head-on (benchmarks/README.md, session 70).
    """
    cfg = FrameConfig.from_cfg(cfg)
    gray = _gray(image)
    if gray is None:
        return FrameEstimate(reason=f"not an image (shape {np.asarray(image).shape})")
    lines = find_lines(gray, cfg)
    fit = lines
    if bones is not None and cfg.bone_share > 0:
        bones = np.asarray(bones, bool)
        if bones.shape[:2] != gray.shape:
            raise ValueError(f"the bones' mask is {bones.shape[:2]}, the photo {gray.shape}: not one image")
        fit = [ln for ln in lines if not over_bones(ln, bones, cfg.bone_share)]
    est = _estimate(gray, fit, cfg)
    if len(fit) < len(lines):
        est.reason += f"; {len(lines) - len(fit)} line(s) over the bones left out"
    # what the endplates are checked against (`photo_lines.along_a_line`): the lines a border could
    # be, near the photo's axes (bones and hardware make long straight lines at any angle)
    est.edges = [ln for ln in lines if axis_family(ln, cfg.max_tilt_deg) is not None]
    return est


def frame_bones(instances: Sequence[Instance], shape: Sequence[int], cfg: FrameConfig) -> np.ndarray | None:
    """`estimate_frame`'s `bones` from the found (or annotated) instances: `bones_mask` grown by
    `cfg.bone_grow` body heights, or None where the estimate leaves no line out (`cfg.bone_share`
    0) or none is made (`cfg.enabled` false)."""
    if not cfg.enabled or cfg.bone_share <= 0:
        return None
    return bones_mask(instances, shape, cfg.bone_grow)


def _estimate(gray: np.ndarray, lines: list[Line], cfg: FrameConfig) -> FrameEstimate:
    """The estimate from the photo's lines: a camera, the four borders of a known aspect, or a
    rotation on which the borders agree (`_from_borders`), else none."""
    b = borders(lines, gray.shape, cfg)
    if not b:
        return FrameEstimate(reason="no straight border found")
    if cfg.perspective and cfg.aspect is None:
        est = _from_camera(lines, gray.shape, cfg)
    elif cfg.perspective and len(b) == 4:
        corners = np.array([intersect(b["top"], b["left"]), intersect(b["top"], b["right"]),
                            intersect(b["bottom"], b["right"]), intersect(b["bottom"], b["left"])])
        est = _from_quad(corners, gray.shape, cfg)
    else:
        est = FrameEstimate(reason=f"{len(b)} of 4 borders")
    return est if est.trusted else _from_borders(b, gray.shape, cfg, est.reason, lines)


#: opposite borders of a screen: a view off head-on (the keystone) tilts the two of a pair by about
#: as much as each other, opposite ways, so the pair's mean tilt is the screen's in-plane roll
OPPOSITE = (("top", "bottom"), ("left", "right"))
#: a line within this of the image's axes (degrees), at least `ON_GRID_SHARE` of the photo's shorter
#: side long, lies on the pixel grid: a screenshot's viewer panels (698 of the phantom's 773
#: screenshots in 17 sets show one among the lines the fit may take; 125 of its 1,267 phone photos,
#: by chance; benchmarks/README.md, session 72)
ON_GRID_DEG = 0.02
ON_GRID_SHARE = 0.3


def on_the_grid(lines: list[Line], shape) -> bool:
    """Whether one of the photo's long straight `lines` (image frame) lies along the pixel grid
    (`ON_GRID_DEG`, `ON_GRID_SHARE`): the sign of a screenshot, whose frame is the image's."""
    side = ON_GRID_SHARE * min(shape[:2])  # a `Line`'s angle lies within ±90° of the horizontal
    return any(ln.extent >= side and min(abs(ln.angle), 90 - abs(ln.angle)) <= ON_GRID_DEG for ln in lines)


def _from_borders(b: dict[str, Line], shape, cfg: FrameConfig, why: str, lines: list[Line] = ()) -> FrameEstimate:
    """A rotation on which two or more borders agree (within `cfg.agree_deg`); else, with
    `cfg.paired_borders`, where the borders found are opposite pairs only (top and bottom, left and
    right, or both) and none of the photo's `lines` lies on the pixel grid (`on_the_grid`: a
    screenshot), the mean of each pair's mean tilt (`OPPOSITE`), confidence low; else no
    correction. `why` says why no perspective was fitted."""
    centre = np.array([shape[1] / 2, shape[0] / 2])
    # each border's deviation from its axis, as a rotation (CCW on screen positive)
    rot = {k: (-ln.angle if k in ("top", "bottom") else -(ln.angle - 90 if ln.angle > 0 else ln.angle + 90))
           for k, ln in b.items()}
    vals = np.array(list(rot.values()))
    if len(vals) >= 2 and np.ptp(vals) <= cfg.agree_deg:
        r = float(np.mean(vals))
        if abs(r) > cfg.max_rotation_deg:
            return FrameEstimate(reason=f"rotation {r:.1f}° too large to trust")
        return FrameEstimate(_rotation_about(centre, r), True, "rotation", r,
                             f"{len(vals)} borders agree on a turn, no perspective checked ({why})",
                             confidence="medium")
    listed = ", ".join(f"{k} {v:+.1f}°" for k, v in rot.items())
    pairs = [(rot[one] + rot[other]) / 2 for one, other in OPPOSITE if one in rot and other in rot]
    if cfg.paired_borders and pairs and 2 * len(pairs) == len(rot) and not on_the_grid(lines, shape):
        r = float(np.mean(pairs))
        if abs(r) <= cfg.max_rotation_deg:
            return FrameEstimate(_rotation_about(centre, r), True, "rotation", r,
                                 f"{why}; borders disagree ({listed}): turned by their opposite pairs' mean tilt, "
                                 "no perspective checked", confidence="low")
    return FrameEstimate(rotation_deg=float(np.mean(vals)),
                         reason=f"{why}; borders disagree or too few for a rotation ({listed})")


def _fit_roll(lines: list[Line], family: np.ndarray, cfg: FrameConfig) -> tuple[float, np.ndarray, float]:
    """The simpler model: the screen seen head-on, only turned in-plane. The roll (degrees, y-down
    image angle of the screen's horizontals) that the longest set of lines agrees with (within
    `cfg.fit_tol_deg`), its inlier mask and their summed length."""
    dev = _deviation(lines, family)
    length = np.array([ln.length for ln in lines])
    scores = [length[np.abs(dev - d) <= cfg.fit_tol_deg].sum() for d in dev]
    k = int(np.argmax(scores))
    inl = np.abs(dev - dev[k]) <= cfg.fit_tol_deg
    return float(np.average(dev[inl], weights=length[inl])), inl, float(scores[k])


def _camera_lines(lines: list[Line], shape, cfg: FrameConfig) -> tuple[list[Line], np.ndarray]:
    """The lines a camera is fitted to: long, uncluttered, near one of the two axes (family 0:
    horizontal, 1: vertical), the 12 longest of each direction."""
    side = cfg.min_line_fraction * min(shape)
    keep, family = [], []
    for ln in sorted(uncluttered([ln for ln in lines if ln.length >= side], shape, cfg.clutter),
                     key=lambda ln: -ln.length):
        fam = axis_family(ln, cfg.max_tilt_deg)
        if fam is not None and family.count(fam) < 12:
            keep.append(ln), family.append(fam)
    return keep, np.array(family, dtype=int)


def _from_camera(lines: list[Line], shape, cfg: FrameConfig) -> FrameEstimate:
    """The rectifying homography from the long straight lines of the photo (see `fit_camera`), or
    a head-on rotation when that explains the lines nearly as well."""
    keep, family = _camera_lines(lines, shape, cfg)
    if len(keep) < cfg.min_lines or len(set(family.tolist())) < 2:
        return FrameEstimate(reason=f"{len(keep)} long lines, too few for a camera fit")
    cam = fit_camera(keep, family, shape, cfg)
    roll, rin, rscore = _fit_roll(keep, family, cfg)
    if rscore >= cfg.prefer_rotation * cam.score and rin.sum() >= 2:
        # as well explained without perspective (screenshots, head-on photos): the simpler model
        est = _square(keep, family, rin, shape, cfg)
        if est is not None:
            return est
        if abs(roll) > cfg.max_rotation_deg:
            return FrameEstimate(reason=f"rotation {-roll:.1f}° too large to trust")
        return _head_on(-roll, int(rin.sum()), shape, f"{int(rin.sum())} lines agree on a head-on view")
    est = _camera_doubt(cam, keep, family, cfg) or _perspective(cam, keep, family, shape, cfg)
    if not est.trusted:
        return est
    est = _square(keep, family, cam.inliers, shape, cfg) or est
    why = _second_view(keep, family, cam.residuals) if est.kind == "perspective" else ""
    if not why:
        return est
    view = _view_deg(cam.R)
    if not _mild(view, cfg):  # a steep view beside lines it leaves out: as often a bone taken for a border
        return FrameEstimate(reason=f"{why} The camera fit, {view:.1f}° off head-on, is not taken beside them",
                             confidence="low")
    est.confidence = "low"  # corrected all the same: the image frame keeps all of both views' keystone
    est.reason = f"{est.reason}; {why} The view of the lines most agree on is taken: it may not be the film's"
    return est


def _deviation(lines: list[Line], family: np.ndarray) -> np.ndarray:
    """Each line's angle from its image axis (degrees; family 0 horizontal, 1 vertical)."""
    return np.array([ln.angle if fam == 0 else (ln.angle - 90 if ln.angle > 0 else ln.angle + 90)
                     for ln, fam in zip(lines, family)])


def _square(lines: list[Line], family: np.ndarray, inliers: np.ndarray, shape, cfg: FrameConfig) -> FrameEstimate | None:
    """The image's own axes, as a head-on view, when they explain what a correction rests on: two
    or more of the lines lie on them (within `cfg.fit_tol_deg`), and of the correction's lines
    those off them are a single line or one object's edges (one direction, midpoints
    within a tenth of the image diagonal). A screenshot's viewer panels lie exactly on the axes;
    a bone's edge, or a humerus's two cortices, are not a screen's borders, which lie apart. None
    when the correction stands (or is itself on the axes)."""
    dev = _deviation(lines, family)
    on = np.abs(dev) <= cfg.fit_tol_deg
    off = np.asarray(inliers, bool) & ~on
    if on.sum() < 2 or not off.any():
        return None
    pts = np.array([ln.point for ln, k in zip(lines, off) if k])
    one_object = (len(set(family[off].tolist())) == 1
                  and np.linalg.norm(pts[:, None] - pts[None], axis=2).max() <= 0.1 * float(np.hypot(*shape[:2])))
    if off.sum() > 1 and not one_object:
        return None
    length = np.array([ln.length for ln in lines])
    r = -float(np.average(dev[on], weights=length[on]))
    what = "a single line" if off.sum() == 1 else f"{int(off.sum())} edges of one object"
    return _head_on(r, int(on.sum()), shape,
                    f"{int(on.sum())} lines lie on the image's axes; a correction off them would rest on {what}")


def _head_on(deg: float, n_lines: int, shape, reason: str) -> FrameEstimate:
    """A head-on view turned by `deg` (CCW on screen) about the image centre, resting on `n_lines`
    lines: high confidence from 3, else medium."""
    return FrameEstimate(_rotation_about(np.array([shape[1] / 2, shape[0] / 2]), deg), True, "rotation", deg,
                         reason, confidence="high" if n_lines >= 3 else "medium")


def _view_deg(R: np.ndarray) -> float:
    """How far off head-on the screen is seen (degrees)."""
    return float(np.degrees(np.arccos(np.clip(R[2, 2], -1, 1))))


def _mild(view_deg: float, cfg: FrameConfig) -> bool:
    """Whether a view `view_deg` off head-on is mild: within `cfg.max_view_deg` / 2, where a fit is
    taken on weaker evidence (one line in a direction, lines left out, a view the lines leave open)."""
    return view_deg <= cfg.max_view_deg / 2


def _camera_doubt(cam: CameraFit, keep: list[Line], family: np.ndarray, cfg: FrameConfig) -> FrameEstimate | None:
    """An untrusted estimate saying why the camera fit cannot be used, or None when it can."""
    fam_in = family[cam.inliers]
    n0, n1 = int((fam_in == 0).sum()), int((fam_in == 1).sum())
    if n0 + n1 < cfg.min_lines or min(n0, n1) < cfg.min_per_direction:
        return FrameEstimate(reason=f"camera fit explains {n0}+{n1} of {len(keep)} lines")
    view = _view_deg(cam.R)
    if min(n0, n1) < 2 and not _mild(view, cfg):  # one line cannot be checked: a mild view only
        return FrameEstimate(reason=f"camera fit rests on one line for a view {view:.1f}° off head-on")
    worst = float(np.max(np.abs(cam.residuals[cam.inliers])))
    if worst > 1.5 * cfg.fit_tol_deg:  # the refined fit must still explain every line it was fitted to
        return FrameEstimate(reason=f"camera fit misses a line by {worst:.2f}°")
    return None


def _perspective(cam: CameraFit, keep: list[Line], family: np.ndarray, shape, cfg: FrameConfig) -> FrameEstimate:
    """The camera fit's homography, with how far lens and crop could move it (`_judged`)."""
    H = camera_homography(cam.R, cam.f, shape)
    r = rotation_deg(H, _centre_in_source(H, shape))
    if abs(r) > cfg.max_rotation_deg:
        return FrameEstimate(reason=f"rotation {r:.1f}° too large to trust")
    inl = cam.inliers
    fitted = [ln for ln, k in zip(keep, inl) if k]
    spread = fit_spread(cam.R, cam.f, fitted, family[inl], shape, cam.focal_fixed, crop=cfg.crop)
    n0, n1 = int((family[inl] == 0).sum()), int((family[inl] == 1).sum())
    view = _view_deg(cam.R)
    what = (f"pinhole fit to {n0}+{n1} lines (focal {cam.f / float(np.hypot(*shape[:2])):.2f} diagonals, "
            f"screen {view:.1f}° off head-on)")
    return _judged(FrameEstimate(H, True, "perspective", r, what, spread=spread), n0 + n1, cfg, view)


def _second_view(lines: list[Line], family: np.ndarray, resid: np.ndarray) -> str:
    """Why the long lines the camera fit leaves out may be the borders of a second view, or '':
    at least two in each direction that miss this view clearly (by over 1.5°) — the edges of a
    printed or displayed photo around the film's, or the film's inside a photographed print (a
    photo of a photo: two pinhole views in a row, which no single one makes). On the phantom,
    which photographs no prints, they were a humerus's cortices and the spine's lines."""
    off = np.abs(resid) > 1.5
    n0, n1 = int((off & (family == 0)).sum()), int((off & (family == 1)).sum())
    if min(n0, n1) < 2:
        return ""
    return (f"two sets of straight borders that no single camera view explains ({n0}+{n1} long lines "
            f"run to other vanishing points): a photo of a photo?")


def _judged(est: FrameEstimate, n_lines: int, cfg: FrameConfig, view_deg: float = 0.0) -> FrameEstimate:
    """A perspective estimate with its confidence, from what the lines leave open (`est.spread`:
    the focal length, a crop's shift of the principal point). Not trusted (image frame) when either
    could move angles by more than `cfg.max_spread_deg` (`cfg.max_spread_unchecked_deg` for a fit
    with no line to check it: 3 lines): the lines do not fix the view. (Measured on phantom and
    independently drawn photos: a tighter limit sends more good fits than wrong ones to the image
    frame, whose own error is the photo's whole perspective; so did judging the sum below.) What
    it says, `uncertainty_deg`, is the two added: to first order a lens and a crop together move
    an angle by up to the sum of what each does alone (their maximum understated it: a photo 1.9°
    unsure by either alone was 2.5° off). High confidence with lines to spare (5 or more; a pose
    needs 3) and a total under 1.5°, else medium. A fit to `cfg.open_view_min_lines` lines or more
    on a view within `cfg.max_view_deg` / 2 of head-on is taken even so, with low confidence: the
    phone's usual lens and an uncropped photo are then nearer the truth than the image frame,
    which keeps the whole perspective (benchmarks/README.md, session 61)."""
    unsure = float(sum(est.spread.values()))
    est.uncertainty_deg = unsure
    limit = cfg.max_spread_deg if n_lines > 3 else cfg.max_spread_unchecked_deg
    if max(est.spread.values(), default=0.0) > limit:
        if 0 < cfg.open_view_min_lines <= n_lines and _mild(view_deg, cfg):
            est.confidence = "low"
            est.reason = (f"{est.reason}: taken, though the lines leave the view open: {n_lines} lines agree on "
                          f"a mild view")
            return est
        est.trusted, est.confidence = False, "low"
        est.reason = (f"{est.reason}: not trusted, the lines leave the view open (another lens or crop could "
                      f"move angles by up to {unsure:.0f}°)")
        return est
    est.confidence = "high" if n_lines >= 5 and unsure <= 1.5 else "medium"
    return est


def _rotation_about(centre: np.ndarray, deg: float) -> np.ndarray:
    """Homography rotating the rectified frame by `deg` (CCW on screen) about `centre` into the image."""
    t = np.radians(deg)
    # y down: a CCW turn on screen is x' = cos·x + sin·y, y' = −sin·x + cos·y
    R = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    H = np.eye(3)
    H[:2, :2] = R
    H[:2, 2] = centre - R @ centre
    return H


def _from_quad(corners: np.ndarray, shape, cfg: FrameConfig) -> FrameEstimate:
    h, w = shape
    if not np.all(np.isfinite(corners)):
        return FrameEstimate(reason="borders do not meet")
    margin = 0.5 * max(h, w)
    if np.any(corners < -margin) or np.any(corners[:, 0] > w + margin) or np.any(corners[:, 1] > h + margin):
        return FrameEstimate(reason="border corners far outside the photo")
    area = cv2.contourArea(corners.astype(np.float32))
    if not cv2.isContourConvex(corners.astype(np.float32)) or area < cfg.min_area_fraction * h * w:
        return FrameEstimate(reason="borders make no plausible quadrilateral", corners=corners)
    aspect = cfg.aspect
    tl, tr, br, bl = corners
    height = (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2
    width = aspect * height
    src = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    # place the rectified frame over the quadrilateral's centre (scale/shift do not change angles)
    src += (corners.mean(axis=0) - src.mean(axis=0)).astype(np.float32)
    H = cv2.getPerspectiveTransform(src, corners.astype(np.float32)).astype(float)
    at = _centre_in_source(H, shape)
    r = rotation_deg(H, at)
    if abs(r) > cfg.max_rotation_deg:
        return FrameEstimate(reason=f"rotation {r:.1f}° too large to trust", corners=corners)
    return FrameEstimate(H, True, "perspective", r, "screen/film borders", corners)
