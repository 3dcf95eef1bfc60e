"""The one image reader: 16-bit PNG/TIFF scaled (not clipped), HEIC, EXIF orientation, errors naming the file;
and every way a photo comes in (datasets, training's mapper, measurement of a folder) reads it alike."""
from __future__ import annotations

import io
import json
import math

import cv2
import numpy as np
import PIL.Image
import pytest

from labelme_factory import image_cache, spine_shapes, write_image, write_labelme  # noqa: F401
from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.images import (ImageReadError, NotAnImageError, decode_image, read_image, to_uint8,
                                  within_pixels)
from spine_d2.data.labelme import load_labelme_dataset

pytestmark = pytest.mark.usefixtures("image_cache")


def picture(h: int = 48, w: int = 40, seed: int = 0) -> np.ndarray:
    """RGB uint8: a smooth gradient with a bright block top-left (orientation shows) and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 200 // w, y * 200 // h, (x + y) * 100 // (w + h)], axis=2)
    img = img + rng.integers(0, 40, (h, w, 3))
    img[: h // 4, : w // 4] = [250, 240, 230]
    return img.astype(np.uint8)


def encode(rgb: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(rgb).save(buf, format=fmt, **kw)
    return buf.getvalue()


def sixteen_bit(rgb: np.ndarray, suffix: str, scale: int = 257, grey: bool = False) -> bytes:
    """`rgb` as a 16-bit PNG/TIFF (as a DICOM viewer exports): values × `scale`, written by OpenCV."""
    arr = rgb[..., 0] if grey else rgb[..., ::-1]
    ok, buf = cv2.imencode(suffix, (arr.astype(np.uint32) * scale).astype(np.uint16))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("grey", [True, False])
def test_a_16_bit_image_reads_as_its_8_bit_twin(suffix, grey):
    rgb = picture()
    if grey:
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
    data = sixteen_bit(rgb, suffix, grey=grey)
    got = decode_image(data, f"x{suffix}", "RGB")
    assert got.dtype == np.uint8 and got.shape == rgb.shape
    assert np.array_equal(got, rgb)


def test_a_12_bit_film_stored_in_16_bits_is_scaled_from_its_own_depth_not_left_dark():
    film = (np.linspace(0, 4095, 64 * 32).reshape(64, 32)).astype(np.uint16)  # 0..4095 in a 16-bit PNG
    ok, buf = cv2.imencode(".png", film)
    got = decode_image(buf.tobytes(), "film.png", "RGB")
    assert got[..., 0].max() == 255 and got[..., 0].min() == 0
    assert np.abs(got[..., 0].astype(float) - film / 4095 * 255).max() <= 0.5
    assert np.array_equal(got[..., 0], got[..., 2])  # grey in three channels


def test_to_uint8_scales_floats_and_never_clips():
    assert np.array_equal(to_uint8(np.array([0.0, 0.5, 1.0])), [0, 128, 255])
    assert np.array_equal(to_uint8(np.array([-100.0, 0.0, 100.0])), [0, 128, 255])
    assert np.array_equal(to_uint8(np.array([0, 1000, 65535], np.uint16)), [0, 4, 255])
    assert np.array_equal(to_uint8(np.array([0, 300, 1023], np.uint16)), [0, 75, 255])  # 10 bits


def test_heic_reads_exactly_when_lossless_and_close_when_lossy():
    rgb = picture(64, 56)
    lossless = encode(rgb, "HEIF", quality=-1, chroma=444, matrix_coefficients=0)
    assert np.array_equal(decode_image(lossless, "photo.heic", "RGB"), rgb)
    lossy = decode_image(encode(rgb, "HEIF", quality=90), "IMG_0001.HEIC", "RGB")
    assert lossy.shape == rgb.shape and np.abs(lossy.astype(int) - rgb).mean() < 8
    bgr = decode_image(lossless, "photo.heic")  # the default: BGR, as OpenCV and the model use
    assert np.array_equal(bgr, rgb[..., ::-1])


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    path = write_image(tmp_path / "phone.jpg", (40, 64), orientation=orientation)  # shown as 40×64
    img = read_image(path, "RGB")
    assert img.shape == (64, 40, 3)
    assert img[:14, :8].mean() > 200 and img[40:, 25:].mean() < 100  # the bright block top-left


@pytest.mark.parametrize("data,error,text", [
    (b"", ImageReadError, "empty"),
    (b"lumbar pain since March\n" * 10, NotAnImageError, "not an image that can be read"),
    (encode(picture(), "JPEG")[:200], ImageReadError, "damaged or incomplete"),
])
def test_a_bad_file_is_an_error_naming_it(tmp_path, data, error, text):
    path = tmp_path / "sub" / "bad.jpg"
    path.parent.mkdir()
    path.write_bytes(data)
    with pytest.raises(error, match=text) as err:
        read_image(path)
    assert str(err.value).startswith(str(path))
    with pytest.raises(ImageReadError, match=f"^{tmp_path / 'gone.png'}: cannot be read"):
        read_image(tmp_path / "gone.png")


def _labelme_folder(root, name: str, data: bytes, shapes, size):
    img = root / "images" / name
    img.parent.mkdir(parents=True, exist_ok=True)
    img.write_bytes(data)
    write_labelme(root / "annotations" / f"{img.stem}.json", img, shapes, image_size=size)
    return img


def test_datasets_and_the_training_mapper_read_heic_and_16_bit_like_the_jpeg(tmp_path):
    """A Labelme folder whose photos are a JPEG, its 16-bit PNG twin and its HEIC twin: each is
    loaded (size as shown) and the training mapper's image is the twin's pixels."""
    from spine_d2.data.transforms import SpineDatasetMapper

    rgb = picture(96, 48)
    jpeg = encode(rgb, "JPEG", quality=95)
    shown = decode_image(jpeg, "a.jpg", "RGB")
    root = tmp_path / "ds"
    shapes = spine_shapes(48, 96)
    _labelme_folder(root, "a.jpg", jpeg, shapes, (48, 96))
    _labelme_folder(root, "b.png", sixteen_bit(shown, ".png"), shapes, (48, 96))
    _labelme_folder(root, "c.heic", encode(shown, "HEIF", quality=-1, chroma=444, matrix_coefficients=0),
                    shapes, (48, 96))
    records = {r["image"]: r for r in load_labelme_dataset(root)}
    assert sorted(records) == ["a", "b", "c"]
    mapper = SpineDatasetMapper(is_train=False, augmentations=[], image_format="BGR")
    images = {k: mapper(r)["image"].numpy().transpose(1, 2, 0) for k, r in records.items()}
    assert np.array_equal(images["a"], shown[..., ::-1])
    assert np.array_equal(images["b"], images["a"]) and np.array_equal(images["c"], images["a"])
    assert (records["b"]["width"], records["b"]["height"]) == (48, 96)


def test_a_16_bit_png_and_a_heic_photo_are_measured_like_their_jpeg_twin(tmp_path):
    """The phantom's photo as JPEG, as a 16-bit PNG and as a (lossy) HEIC, with the same
    polygons: the angles measured from the folder (frame estimated from the pixels) agree."""
    from spine_d2.measure.dataset import measure_dataset
    from spine_d2.synthetic.generate import generate_dataset

    src = generate_dataset(tmp_path / "ph", 1, seed=4, difficulty="easy", workers=1, progress=False)
    (photo,) = sorted((src / "images").iterdir())
    (ann,) = sorted((src / "annotations").iterdir())
    shown = read_image(photo, "RGB")
    root = tmp_path / "twins"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    twins = {"jpeg.jpg": photo.read_bytes(), "png16.png": sixteen_bit(shown, ".png"),
             "heic.heic": encode(shown, "HEIF", quality=92)}
    raw = json.loads(ann.read_text())
    for name, data in twins.items():
        (root / "images" / name).write_bytes(data)
        (root / "annotations" / f"{name.split('.')[0]}.json").write_text(
            json.dumps({**raw, "imagePath": f"../images/{name}", "imageData": None}))
    rows = {r["image"]: r for r in measure_dataset(root)}
    assert rows["png16"]["frame"] == rows["jpeg"]["frame"] == rows["heic"]["frame"]
    measured = 0
    for name in ANGLE_NAMES:
        a = rows["jpeg"][name]
        if math.isnan(a):
            continue
        measured += 1
        assert rows["png16"][name] == pytest.approx(a, abs=1e-9), name
        assert rows["heic"][name] == pytest.approx(a, abs=0.2), name
    assert measured == 6


def test_a_photo_over_the_pixel_budget_is_scaled_down_to_it_and_a_smaller_one_kept():
    photo = np.random.default_rng(0).integers(0, 256, (300, 200, 3), np.uint8)
    assert within_pixels(photo, 60_000) is photo and within_pixels(photo, 0) is photo
    small = within_pixels(photo, 15_000)
    assert small.shape[2] == 3 and small.shape[0] * small.shape[1] <= 15_000
    assert small.shape[:2] == (150, 100)  # the aspect kept
    assert abs(float(small.mean()) - float(photo.mean())) < 1.0  # averaged, not sampled
