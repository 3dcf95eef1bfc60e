"""Frame correction: the photo's rotation and perspective from the screen's borders, on known homographies."""
import math
import re

import cv2
import numpy as np
import pytest

from spine_d2.frames import frame_error
from spine_d2.measure.camera import Line
from spine_d2.measure.config import FrameConfig
from spine_d2.measure.photo_lines import along_a_line, find_lines
from spine_d2.measure.rectify import estimate_frame, frame_bones, given_frame


def camera_homography(yaw=0.0, pitch=0.0, roll=0.0, f=900.0, size=(900, 700), screen=(640, 400), dist=1.3):
    """Pinhole camera looking at a screen of `screen` px (plane z=0): screen px → image px."""
    w, h = size
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    a, b, c = (math.radians(v) for v in (pitch, yaw, roll))
    Rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    Ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    Rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    R = Rz @ Ry @ Rx
    sw, sh = screen
    centre = np.array([sw / 2, sh / 2, 0.0])
    t = np.array([0, 0, dist * f]) - R @ centre * 1.0
    H = K @ np.column_stack([R[:, 0], R[:, 1], t])
    return H / H[2, 2]


def photo_of_screen(H, size=(900, 700), screen=(640, 400), seed=0):
    """Background, a dark bezel and a screen (black viewer, grey toolbar, bright film) warped by H."""
    rng = np.random.default_rng(seed)
    w, h = size
    sw, sh = screen
    canvas = np.full((sh, sw), 12, np.uint8)
    canvas[: sh // 20] = 60                                  # toolbar
    cv2.rectangle(canvas, (sw // 3, sh // 12), (2 * sw // 3, sh - 10), 150, -1)  # the film
    cv2.ellipse(canvas, (sw // 2, sh // 2), (40, 120), 10, 0, 360, 230, -1)     # something bright in it
    photo = np.full((h, w), 140, np.uint8) + rng.integers(0, 6, (h, w), dtype=np.uint8)
    bz = 0.03 * sw
    bezel = np.array([[-bz, -bz], [sw + bz, -bz], [sw + bz, sh + bz], [-bz, sh + bz]], np.float32)
    cv2.fillConvexPoly(photo, np.round(cv2.perspectiveTransform(bezel[None], H)[0]).astype(np.int32), 25)
    cv2.warpPerspective(canvas, H, (w, h), dst=photo, borderMode=cv2.BORDER_TRANSPARENT)
    return cv2.cvtColor(photo, cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize("roll", [-6.0, 0.0, 4.0])
def test_in_plane_rotation_is_found(roll):
    H = camera_homography(roll=roll)
    img = photo_of_screen(H)
    est = estimate_frame(img)
    assert est.trusted
    err = frame_error(est, H, img.shape)
    assert abs(err["rotation_error_deg"]) < 0.3
    assert err["max_angle_error_deg"] < 0.6


@pytest.mark.parametrize("dist", [1.3, 1.4])
def test_perspective_of_a_pinhole_camera_is_undone(dist):
    H = camera_homography(yaw=18.0, pitch=-12.0, roll=3.0, dist=dist)
    img = photo_of_screen(H)
    # any four borders aligned with the screen (bezel, viewer panels, film) bound a rectangle whose
    # aspect the pinhole model recovers
    est = estimate_frame(img)
    assert est.trusted and est.kind == "perspective"
    err = frame_error(est, H, img.shape)
    assert err["max_angle_error_deg"] < 0.6
    none = frame_error(np.eye(3), H, img.shape)
    assert none["max_angle_error_deg"] > 3 * err["max_angle_error_deg"]


def test_no_borders_means_image_frame():
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 8)
    est = estimate_frame(img)
    assert not est.trusted and est.reason
    assert "frame: image" in est.describe()
    assert not estimate_frame(np.zeros((5,), np.uint8)).trusted


def test_given_homography_and_frame_error():
    H = camera_homography(roll=5.0)
    est = given_frame(H, (700, 900))
    assert est.trusted and est.rotation_deg == pytest.approx(-5.0, abs=0.05)  # camera roll turns the picture back
    assert frame_error(est, H, (700, 900))["max_angle_error_deg"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_the_phantoms_own_camera_pose_is_recovered(seed):
    """A homography from the phantom's phone-camera model (pitch/yaw up to 15°, roll up to 6°, a
    23–30 mm or 2× lens, principal point off centre) is undone to within 0.5° in every direction."""
    from spine_d2.synthetic.phone import phone_camera
    from spine_d2.synthetic.knobs import knobs_for

    screen, size = (640, 400), (900, 700)
    cam = phone_camera(*screen, *size, np.random.default_rng(seed), knobs_for("realistic", crop=0.0))
    img = photo_of_screen(cam["H"], size, screen, seed)
    est = estimate_frame(img)
    assert est.trusted and est.kind == "perspective", est.reason
    err = frame_error(est, cam["H"], img.shape)
    # within 0.5°, or within what the estimate says another lens could change (a 2× lens the lines
    # of a nearly head-on view cannot tell from the 26 mm prior)
    assert err["max_angle_error_deg"] < max(0.5, 1.1 * est.uncertainty_deg), (cam["focal_mm_equiv"], err, est.spread)
    assert frame_error(np.eye(3), cam["H"], img.shape)["max_angle_error_deg"] > 1.0  # there was something to undo


def test_a_screenshot_with_slanted_bone_edges_stays_square():
    """Axis-aligned viewer borders plus a tangle of slanted edges (a spine) in the film: no
    perspective is invented — the estimate is a head-on one (or none) within 0.3°."""
    img = cv2.cvtColor(photo_of_screen(np.eye(3), size=(900, 700), screen=(900, 700)), cv2.COLOR_BGR2GRAY)
    rng = np.random.default_rng(3)
    for _ in range(14):  # vertebral edges: long, steep, at scattered angles, close together
        x, t = rng.uniform(420, 520), np.radians(rng.uniform(72, 86))
        d = np.array([np.cos(t), np.sin(t)]) * rng.uniform(150, 260)
        c = np.array([x, rng.uniform(250, 450)])
        cv2.line(img, tuple(np.round(c - d).astype(int)), tuple(np.round(c + d).astype(int)), 255, 3)
    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    est = estimate_frame(img)
    assert est.kind in ("rotation", "none"), est.reason
    assert frame_error(est, np.eye(3), img.shape)["max_angle_error_deg"] < 0.3


@pytest.mark.parametrize("edges,what", [
    ([(420, 450, 80.0, 420)], "a bone's edge, steep"),
    ([(520, 250, 23.5, 400), (528, 268, 23.7, 380), (536, 280, 23.8, 300)], "a humerus's cortices, 23.6° off"),
])
def test_a_screenshot_is_not_turned_by_one_bone(edges, what):
    """A screenshot (viewer panels on the image's axes) with one long straight bone in the film: a
    camera fit made 9.4° of perspective of the steep edge and a rotation made a 23.7° turn of the
    humerus before a correction had to rest on more than one object's lines (phantom screenshots
    0037 and 0379 of the default phantom, 21° and 24° wrong)."""
    img = cv2.cvtColor(photo_of_screen(np.eye(3), size=(700, 900), screen=(700, 900)), cv2.COLOR_BGR2GRAY)
    for x, y, angle, length in edges:  # bright bony lines, 3 px wide: two edges each
        d = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))]) * length / 2
        cv2.line(img, tuple(np.round([x, y] - d).astype(int)), tuple(np.round([x, y] + d).astype(int)), 235, 3)
    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    est = estimate_frame(img)
    assert est.trusted and est.kind == "rotation", (what, est.reason)
    assert "lie on the image's axes" in est.reason and "one object" in est.reason
    assert frame_error(est, np.eye(3), img.shape)["max_angle_error_deg"] < 0.1, what


def _band_photo(H, screen, size=(900, 700)):
    """A phone photo of a dark screen `screen` px (w, h) on a lighter wall, seen through H: a screen
    wider (or taller) than the photo shows two opposite borders only."""
    w, h = size
    img = np.full((h, w), 150, np.uint8) + np.random.default_rng(0).integers(0, 6, (h, w), dtype=np.uint8)
    sw, sh = screen
    quad = cv2.perspectiveTransform(np.array([[[0, 0], [sw, 0], [sw, sh], [0, sh]]], np.float32), H)[0]
    cv2.fillConvexPoly(img, np.round(quad).astype(np.int32), 30)
    return img


@pytest.mark.parametrize("yaw,pitch,roll", [(16.0, 0.0, 4.0), (-14.0, 0.0, -5.0), (0.0, 12.0, 3.0)])
def test_two_opposite_borders_alone_turn_the_photo_by_their_mean_tilt(yaw, pitch, roll):
    """Only the screen's top and bottom (or left and right) borders in view: too few lines for a
    camera, and the keystone tilts the two opposite ways, so they disagree. Their mean tilt is the
    roll: the photo is turned by it (confidence low) and every direction is within about a degree,
    where the image frame was 3.5-6° off."""
    screen = (2000, 300) if pitch == 0 else (300, 2000)
    H = camera_homography(yaw=yaw, pitch=pitch, roll=roll, screen=screen, dist=1.0)
    img = cv2.cvtColor(_band_photo(H, screen), cv2.COLOR_GRAY2BGR)
    est = estimate_frame(img)
    assert est.trusted and est.kind == "rotation" and est.confidence == "low", est.reason
    assert "opposite pairs' mean tilt" in est.reason
    turned = frame_error(est, H, img.shape)["max_angle_error_deg"]
    off = estimate_frame(img, {"paired_borders": False})
    assert not off.trusted and "borders disagree" in off.reason
    kept = frame_error(off.H, H, img.shape)["max_angle_error_deg"]
    assert turned < 1.3 and kept > 3.0 * turned, (turned, kept)


def test_two_opposite_borders_beside_a_line_on_the_pixel_grid_leave_the_image_frame():
    """The same two borders with a long line lying exactly along the pixel grid (a viewer panel: a
    screenshot, whose frame is the image's) or a lone third border beside them: no turn."""
    H = camera_homography(yaw=16.0, roll=4.0, screen=(2000, 300), dist=1.0)
    gray = _band_photo(H, (2000, 300))
    panel = gray.copy()
    cv2.line(panel, (150, 350), (750, 350), 220, 3)  # on the grid, between the two borders
    est = estimate_frame(cv2.cvtColor(panel, cv2.COLOR_GRAY2BGR))
    assert not est.trusted and "borders disagree" in est.reason, est.reason
    side = gray.copy()
    cv2.line(side, (860, 40), (880, 660), 220, 3)  # a right border, steep: three borders
    est = estimate_frame(cv2.cvtColor(side, cv2.COLOR_GRAY2BGR))
    assert not (est.kind == "rotation" and "opposite pairs" in est.reason), est.reason


def _bars(shape, bars):
    """A dark screenshot with bright straight bones (centre, length, width, angle in degrees) and
    where they lie (bool mask)."""
    img, mask = np.full(shape, 15, np.uint8), np.zeros(shape, np.uint8)
    for centre, length, width, angle in bars:
        box = np.round(cv2.boxPoints((centre, (length, width), angle))).astype(np.int32)
        cv2.fillConvexPoly(img, box, 200)
        cv2.fillConvexPoly(mask, box, 1)
    return cv2.cvtColor(cv2.GaussianBlur(img, (5, 5), 0), cv2.COLOR_GRAY2BGR), mask.astype(bool)


SPINE_AND_ARM = [((450, 350), 520, 60, 84.0), ((300, 200), 420, 40, 8.0), ((600, 520), 380, 40, 8.0)]


def test_the_edges_of_the_bones_found_are_no_borders():
    """A screenshot with no border in view whose only long lines are a spine's and an arm's edges:
    a rotation explains them as a screen turned 8°; told where the bones lie, the estimate leaves
    their edges out, finds no border and keeps the image frame, which is right."""
    img, bones = _bars((700, 900), SPINE_AND_ARM)
    turned = estimate_frame(img)
    assert turned.trusted and frame_error(turned, np.eye(3), img.shape)["max_angle_error_deg"] > 5
    grown = cv2.dilate(bones.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    est = estimate_frame(img, bones=grown)
    assert not est.trusted and "line(s) over the bones left out" in est.reason
    assert frame_error(est.H, np.eye(3), img.shape)["max_angle_error_deg"] < 1e-6
    assert estimate_frame(img, {"bone_share": 0.0}, bones=grown).trusted  # 0: off
    with pytest.raises(ValueError, match="not one image"):
        estimate_frame(img, bones=grown[:-1])


def test_the_bones_found_reach_the_frame_estimate_through_the_measurement():
    """`measure_instances` hands the frame estimate its sure vertebrae and femoral heads
    (`bones_mask`), grown by half a body's height; weak ones and other classes stay out."""
    from spine_d2.measure import MeasureConfig, measure_instances
    from spine_d2.measure.instances import Instance, bones_mask

    img, _ = _bars((700, 900), SPINE_AND_ARM)
    insts = [Instance("lumbar", polygon=cv2.boxPoints((c, (l, w), a)))
             for c, l, w, a in SPINE_AND_ARM]
    m = measure_instances(insts, img.shape[:2], cfg=MeasureConfig(), image=img)
    assert not m.correction.trusted and "over the bones left out" in m.correction.reason
    off = measure_instances(insts, img.shape[:2], cfg=MeasureConfig.from_cfg({"frame": {"bone_share": 0}}), image=img)
    assert off.correction.trusted
    weak = [Instance(i.class_name, polygon=i.polygon, score=0.3) for i in insts]
    assert bones_mask(weak, img.shape[:2], 0.5) is None
    assert bones_mask([Instance("other", polygon=insts[0].polygon)], img.shape[:2], 0.5) is None
    body = Instance("lumbar", polygon=[[100, 100], [160, 100], [160, 140], [100, 140]])
    head = Instance("femoral_head", circle=(400.0, 400.0, 30.0))
    mask = bones_mask([body, head], (700, 900), 0.5)
    # grown by half the body's height (its 40 px and the outline's rasterising margin: 22 px)
    assert mask[120, 130] and mask[400, 400] and mask[120, 181] and not mask[120, 184]
    assert mask[400, 451] and not mask[400, 454]
    assert not bones_mask([body, head], (700, 900), 0.0)[120, 165]
    # what the frame estimate is handed: the same mask, none where it would leave no line out
    assert np.array_equal(frame_bones([body, head], (700, 900), FrameConfig()), mask)
    assert frame_bones([body, head], (700, 900), FrameConfig(bone_share=0.0)) is None
    assert frame_bones([body, head], (700, 900), FrameConfig(enabled=False)) is None


def test_a_perspective_estimate_says_how_sure_it_is():
    H = camera_homography(yaw=15.0, pitch=-10.0, roll=2.0)
    img = photo_of_screen(H)
    est = estimate_frame(img)
    assert est.trusted and est.confidence in ("high", "medium")
    assert set(est.spread) == {"focal", "centre"} and est.uncertainty_deg == pytest.approx(sum(est.spread.values()))
    err = frame_error(est, H, img.shape)["max_angle_error_deg"]
    assert err <= max(0.5, est.uncertainty_deg)
    text = est.describe()
    assert text.startswith("frame: radiograph via perspective correction") and f"confidence {est.confidence}" in text
    assert "could move angles by up to" in text


def photo_of_a_photo(yaw2: float, pitch2: float):
    """A photo of the screen, printed with a white margin and photographed again: two pinhole
    views in a row. Returns (image, true screen → image homography)."""
    H1 = camera_homography(yaw=-15, pitch=10, roll=2, dist=1.1)
    first = cv2.cvtColor(photo_of_screen(H1), cv2.COLOR_BGR2GRAY)
    paper = np.full((860, 1060), 235, np.uint8)
    paper[80:780, 80:980] = first
    H2 = camera_homography(yaw=yaw2, pitch=pitch2, roll=-3, screen=(1060, 860), dist=1.25, f=800)
    img = cv2.warpPerspective(paper, H2, (900, 700), borderValue=90)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), H2 @ np.array([[1, 0, 80], [0, 1, 80], [0, 0, 1.0]]) @ H1


@pytest.mark.parametrize("yaw2,pitch2", [(15.0, -10.0), (-12.0, 8.0)])
def test_a_photo_of_a_photo_is_corrected_with_low_confidence_and_says_why(yaw2, pitch2):
    """The print's edges and the screen's run to different vanishing points: no single camera
    explains both. The view most of the lines agree on is taken, with low confidence and saying
    why: the image frame would keep the whole of both views' keystone (on photos of photos of
    spines drawn apart from the phantom the view taken was nearer the truth, 3.5° against 5.1° on
    average; benchmarks/README.md, session 61). Not every such photo is noticed: the two views
    must leave two lines in each direction to each other."""
    img, H = photo_of_a_photo(yaw2, pitch2)
    uncorrected = frame_error(np.eye(3), H, img.shape)["max_angle_error_deg"]
    assert uncorrected > 3
    est = estimate_frame(img)
    assert est.trusted and est.kind == "perspective" and est.confidence == "low"
    assert "a photo of a photo?" in est.reason and "it may not be the film's" in est.describe()
    assert frame_error(est, H, img.shape)["max_angle_error_deg"] < uncorrected + 0.5


def test_a_view_the_lines_leave_open_is_not_trusted_unless_many_lines_agree_on_a_mild_one():
    """Lens and crop could move this (made-up) fit by more than `max_spread_deg`: image frame; but
    with `open_view_min_lines` lines or more on a view within 20° of head-on it is taken, with low
    confidence (the phone's usual lens and an uncropped photo are nearer than the image frame)."""
    H = camera_homography(yaw=15.0, pitch=-10.0, roll=2.0)
    img = photo_of_screen(H)
    est = estimate_frame(img)
    assert est.trusted and est.confidence in ("high", "medium")
    strict = {"max_spread_deg": est.uncertainty_deg / 2}
    never = estimate_frame(img, {**strict, "open_view_min_lines": 0, "paired_borders": False})
    assert not never.trusted
    assert "the lines leave the view open" in never.reason and "frame: image" in never.describe()
    # the screen's four borders are two opposite pairs: their mean tilt turns the photo instead
    paired = estimate_frame(img, {**strict, "open_view_min_lines": 0})
    assert paired.kind == "rotation" and paired.confidence == "low" and "the lines leave the view open" in paired.reason
    assert frame_error(paired, H, img.shape)["max_angle_error_deg"] < frame_error(np.eye(3), H, img.shape)["max_angle_error_deg"]
    n_lines = sum(int(k) for k in re.search(r"fit to (\d+)\+(\d+) lines", est.reason).groups())
    taken = estimate_frame(img, {**strict, "open_view_min_lines": n_lines})
    assert taken.trusted and taken.confidence == "low" and "taken, though the lines leave the view open" in taken.reason
    assert np.allclose(taken.H, est.H)
    for more in ({"open_view_min_lines": n_lines + 1}, {"open_view_min_lines": n_lines, "max_view_deg": 20.0}):
        assert estimate_frame(img, {**strict, **more}).kind != "perspective"
        assert not estimate_frame(img, {**strict, **more, "paired_borders": False}).trusted


def test_the_phantoms_photos_are_corrected_to_their_true_homography(tmp_path):
    """Phone photos of the phantom's films (spine_d2.synthetic: a pinhole camera, a screen with its
    viewer around the film, glare, moiré, JPEG), each storing the true radiograph→image homography:
    most are corrected, each within half a degree of the truth for every direction or within what
    it says lens and crop could move it (`uncertainty_deg`), where leaving
    the photo uncorrected would be off by more than 1°."""
    import json

    from spine_d2.data.images import read_image
    from spine_d2.data.labelme import load_labelme_dataset
    from spine_d2.levels import get_class_map
    from spine_d2.measure.instances import bones_mask, instances_from_record
    from spine_d2.synthetic.generate import generate_dataset

    root = generate_dataset(tmp_path / "ph", 8, seed=5, workers=1, progress=False, photo_fraction=1.0)
    cmap = get_class_map("default")
    records = {r["image"]: r for r in load_labelme_dataset(root, cmap)}
    trusted = 0
    for path in sorted((root / "annotations").glob("*.json")):
        truth = json.loads(path.read_text())["spine_d2"]
        assert truth["capture"]["kind"] == "photo"
        image = read_image(next((root / "images").glob(f"{path.stem}.*")))
        # the annotated vertebrae and femoral heads left out, as the measurement leaves out the model's
        bones = bones_mask(instances_from_record(records[path.stem], cmap.classes), image.shape[:2], 0.5)
        est = estimate_frame(image, bones=bones)
        uncorrected = frame_error(np.eye(3), truth["homography"], image.shape)["max_angle_error_deg"]
        assert uncorrected > 1.0, path.stem  # the photos are tilted: the test can fail
        if est.trusted:
            trusted += 1
            assert est.kind == "perspective" and est.confidence in ("high", "medium"), path.stem
            err = frame_error(est, truth["homography"], image.shape)
            assert err["max_angle_error_deg"] < max(0.5, est.uncertainty_deg), (path.stem, err, est.describe())
        else:
            assert np.allclose(est.H, np.eye(3)) and est.reason, path.stem  # the image frame, and why
    assert trusted >= 6


def test_an_endplate_along_a_long_straight_line_is_found_and_an_endplate_beside_one_is_not():
    """A film's border (600 px at 2°) and endplates of 50 px: along it, near it, turned from it."""
    border = Line(2.0, np.array([400.0, 300.0]), 600.0, 600.0)
    t = math.radians(2.0)
    d, n = np.array([math.cos(t), math.sin(t)]), np.array([-math.sin(t), math.cos(t)])
    on = np.array([[380.0, 300.0] - 25 * d, [380.0, 300.0] + 25 * d]) + 0.8 * n
    assert along_a_line(on, [border]) is border
    assert along_a_line(on[::-1], [border]) is border  # either end first
    assert along_a_line(on + 15 * n, [border]) is None  # a plate just inside the film, parallel to it
    u = math.radians(2.0 + 9.0)
    turned = on.mean(axis=0) + np.outer([-25.0, 25.0], [math.cos(u), math.sin(u)])
    assert along_a_line(turned, [border]) is None  # 9° off it, its ends within 4 px: a plate crossing the border
    assert along_a_line(on + 340 * d, [border]) is None  # past the line's end
    short = Line(2.0, np.array([400.0, 300.0]), 100.0, 100.0)
    assert along_a_line(on, [short]) is None  # a line hardly longer than the plate may be the plate's own edge
    assert along_a_line(on, []) is None


def test_the_edges_endplates_are_checked_against_are_the_long_lines_near_the_photos_axes():
    """The screen's borders are kept; a long straight rod across the film at 45° is no border."""
    img = photo_of_screen(camera_homography(roll=3.0))
    cv2.line(img, (300, 250), (560, 510), (250, 250, 250), 3)
    est = estimate_frame(img)
    assert any(abs(ln.angle) < 10 for ln in est.edges) and any(abs(ln.angle) > 80 for ln in est.edges)
    assert all(min(abs(ln.angle), 90 - abs(ln.angle)) <= 30 for ln in est.edges)
    # the rod is among the photo's lines, only not among the edges
    assert any(30 < abs(ln.angle) < 60 for ln in find_lines(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), FrameConfig()))


def phantom_photo(tmp_path, index: int, seed: int, n: int):
    """Image `index` of the default phantom `seed` (of `n`), rendered alone, and its true homography."""
    import json

    from spine_d2.data.images import read_image
    from spine_d2.synthetic.generate import make_image
    from spine_d2.synthetic.knobs import knobs_for

    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    make_image(index, seed, n, knobs_for("realistic"), tmp_path)
    truth = json.loads(next((tmp_path / "annotations").iterdir()).read_text())["spine_d2"]["homography"]
    return read_image(next((tmp_path / "images").iterdir())), np.asarray(truth)


def test_a_view_whose_lines_left_out_are_the_anatomys_is_taken(tmp_path):
    """A phone photo (default phantom, seed 1026, image 74; 5.4° off head-on) whose camera fit
    explains the screen's ten borders and leaves out a humerus's two cortices and three lines of
    the spine, two directions' lines as a photographed print's edges would be: the fit is taken,
    as the truth has it, saying what it left out (it was left uncorrected, 4.8° off)."""
    image, H = phantom_photo(tmp_path, 74, 1026, 96)
    est = estimate_frame(image)
    assert est.trusted and est.kind == "perspective" and est.confidence == "low", est.reason
    assert frame_error(est, H, image.shape)["max_angle_error_deg"] < 0.3
    assert frame_error(np.eye(3), H, image.shape)["max_angle_error_deg"] > 4.0


def test_a_steep_view_beside_lines_it_leaves_out_in_both_directions_is_not_taken(tmp_path):
    """A phone photo (default phantom, seed 1, image 153) the camera fit explains 30° off head-on
    with a humerus's three cortices for the screen's horizontals, leaving out the true top border
    (two lines) and the spine's: beside lines left out in both directions, a view over 20° off
    head-on is not taken (taken, it was 10° wrong; uncorrected, 2.2°)."""
    image, H = phantom_photo(tmp_path, 153, 1, 428)
    est = estimate_frame(image)
    assert not est.trusted and "is not taken beside them" in est.reason, est.reason
    assert frame_error(np.eye(3), H, image.shape)["max_angle_error_deg"] < 2.5
