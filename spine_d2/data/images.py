"""The project's one image reader: a file or encoded bytes → H×W×3 uint8 (BGR or RGB), image frame as displayed.

Every place a photo comes in (datasets and training, evaluation, `tools/predict.py`, the page,
the measurement of a Labelme folder) reads it here, so they all see the same pixels:

- the EXIF orientation is applied, as Labelme, phones and detectron2 show the photo;
- HEIC/HEIF (an iPhone's default) is read through pillow-heif;
- 16-bit PNG/TIFF (what DICOM viewers export; grey or colour) is scaled from the bit depth its
  values use (8, 10, 12, 14 or 16 bits: a 12-bit film stored in 16 bits is not left dark) to
  0–255, never clipped; float images from their own minimum–maximum;
- grey, palette, alpha and CMYK images become three channels;
- anything unreadable raises `ImageReadError` naming the file and what is wrong.
"""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import PIL.Image
import PIL.ImageOps

try:  # HEIC/HEIF: registers an opener with Pillow
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF = True
except ImportError:  # pragma: no cover - pinned in requirements.txt
    HEIF = False

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".heif")  # as users name them
READABLE = "JPEG, PNG, HEIC, WebP, BMP or TIFF"
FORMATS = ("BGR", "RGB")
EXIF_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
#: PIL transpose that shows the stored pixels of EXIF orientation k as displayed.
_SHOW_ORIENTATION = {
    2: PIL.Image.Transpose.FLIP_LEFT_RIGHT, 3: PIL.Image.Transpose.ROTATE_180,
    4: PIL.Image.Transpose.FLIP_TOP_BOTTOM, 5: PIL.Image.Transpose.TRANSPOSE,
    6: PIL.Image.Transpose.ROTATE_270, 7: PIL.Image.Transpose.TRANSVERSE,
    8: PIL.Image.Transpose.ROTATE_90,
}
_DEPTHS = (8, 10, 12, 14, 16, 32)


class ImageReadError(ValueError):
    """An image that cannot be read; the message names the file and the problem."""


class NotAnImageError(ImageReadError):
    """The bytes are no image format read here (as opposed to a damaged image)."""


def orientation(image: PIL.Image.Image) -> int:
    """The EXIF orientation (1–8) of an opened image; 1 when absent or unreadable."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 - a broken EXIF block: shown as stored
        return 1
    return int(value) if value in _SHOW_ORIENTATION else 1


def oriented_size(image: PIL.Image.Image) -> tuple[int, int]:
    """(width, height) of an opened image as displayed (EXIF orientation applied), from the header."""
    w, h = image.size
    return (h, w) if orientation(image) in _TRANSPOSED else (w, h)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Pixel values of any depth as uint8, scaled (never clipped): integers from the smallest bit
    depth holding their maximum (a 12-bit film in 16 bits → 0–4095 ↦ 0–255), floats from their
    own range (0–1 when they lie in it)."""
    a = np.asarray(pixels)
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating):
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if lo >= 0 and hi <= 1:
            lo, hi = 0.0, 1.0
        scaled = (np.nan_to_num(a, nan=lo) - lo) / max(hi - lo, 1e-12)
        return np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)
    a = a.astype(np.int64)
    lo = int(a.min()) if a.size else 0
    if lo < 0:  # signed data: shift to start at 0
        a = a - lo
    top = int(a.max()) if a.size else 0
    bits = next((b for b in _DEPTHS if top < 2 ** b), 63)
    return np.rint(a * (255.0 / (2 ** bits - 1))).astype(np.uint8)


def _bits_per_channel(im: PIL.Image.Image, data: bytes) -> int:
    """Bits per channel a PNG or TIFF stores (from its header); 8 for other formats."""
    if im.format == "PNG" and len(data) > 24:
        return int(data[24])  # IHDR bit depth
    if im.format == "TIFF":
        bps = getattr(im, "tag_v2", {}).get(258, 8)  # BitsPerSample
        return int(max(bps) if isinstance(bps, (tuple, list)) else bps)
    return 8


def _rgb(im: PIL.Image.Image, data: bytes) -> np.ndarray:
    """H×W×3 uint8 RGB of an opened image in its stored orientation. More than 8 bits per channel
    (Pillow keeps grey ones, drops colour ones to 8 bits; OpenCV keeps both) go through `to_uint8`."""
    if _bits_per_channel(im, data) > 8 or im.mode in ("I", "F") or im.mode.startswith("I;16"):
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        if arr is None:  # a variant OpenCV does not decode: Pillow's grey pixels
            arr = np.asarray(im)
        elif arr.ndim == 3:
            arr = cv2.cvtColor(arr[..., :3], cv2.COLOR_BGR2RGB) if arr.shape[2] >= 3 else arr[..., 0]
        arr = to_uint8(arr)
    else:
        arr = np.asarray(im.convert("RGB"))
    return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr


def decode_image(data: bytes, name: str, format: str = "BGR") -> np.ndarray:
    """Encoded image bytes (a file's, an upload's) → H×W×3 uint8 in `format` ('BGR' | 'RGB'), EXIF
    orientation applied; ImageReadError naming `name` otherwise."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if not data:
        raise ImageReadError(f"{name}: the file is empty (0 bytes)")
    try:
        with PIL.Image.open(io.BytesIO(data)) as im:
            turn = _SHOW_ORIENTATION.get(orientation(im))
            arr = _rgb(im, data)
    except PIL.Image.DecompressionBombError as e:
        raise ImageReadError(f"{name}: too many pixels to decode safely ({e})") from None
    except PIL.UnidentifiedImageError:
        hint = "" if HEIF or not name.lower().endswith((".heic", ".heif")) else " (install pillow-heif for HEIC)"
        raise NotAnImageError(f"{name}: not an image that can be read ({READABLE}){hint}") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for damaged files
        raise ImageReadError(f"{name}: damaged or incomplete image ({type(e).__name__}: {e})") from None
    if arr.size == 0:
        raise ImageReadError(f"{name}: the image has no pixels")
    if turn is not None:
        arr = np.asarray(PIL.Image.fromarray(arr).transpose(turn))
    return np.ascontiguousarray(arr[..., ::-1] if format == "BGR" else arr)


def read_image(path: str | Path, format: str = "BGR") -> np.ndarray:
    """An image file → H×W×3 uint8 in `format`, as displayed (see the module docstring);
    ImageReadError naming the file otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ImageReadError(f"{path}: cannot be read ({type(e).__name__}: {e.strerror or e})") from None
    return decode_image(data, str(path), format)


def image_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) as displayed, from the header only; ImageReadError naming `name` otherwise."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as im:
            return oriented_size(im)
    except PIL.Image.DecompressionBombError:
        raise
    except PIL.UnidentifiedImageError:
        raise NotAnImageError(f"{name}: not an image that can be read ({READABLE})") from None
    except Exception as e:  # noqa: BLE001
        raise ImageReadError(f"{name}: the image header is damaged ({type(e).__name__}: {e})") from None


def within_pixels(image: np.ndarray, max_pixels: int) -> np.ndarray:
    """`image` (H×W[×C]), or where it has more than `max_pixels` pixels a copy scaled down to about
    that many (area-averaged, aspect kept): what a very large photo (a 48–200 megapixel phone
    mode) is measured on. The model sees ~544 px and the high-resolution windows ~22 px per
    thoracic body, so nothing it measures needs more; at full size each detection's mask takes
    the photo's pixel count in memory (a 48 MP photo took 7 GB)."""
    h, w = image.shape[:2]
    if max_pixels <= 0 or h * w <= max_pixels:
        return image
    f = (max_pixels / (h * w)) ** 0.5
    return cv2.resize(image, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
