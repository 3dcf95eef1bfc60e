"""Where a Labelme dataset's files are: its annotation JSON files and the image each one names.

An annotation names its image by `imagePath` (relative to the JSON, Windows separators too) or
embeds it (`imageData`). The image's size is read with the EXIF orientation applied
(`spine_d2.data.images`, the project's one reader; embedded data as stored, as Labelme shows it).
An embedded image with no file on disk is decoded once into a cache outside the dataset folder
(`image_cache_dir`): nothing in the dataset folder is ever written.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
from pathlib import Path, PureWindowsPath

import PIL.Image

from spine_d2.data.images import oriented_size  # the one reader; also lets Pillow open HEIC
from spine_d2.data.labelme.problems import DatasetError, FileCheck


def annotation_dir(root: str | Path) -> Path:
    """Where the annotation JSON files are: `root/annotations/` if present, else `root/images/`
    (Labelme's default: the JSON beside its image), else `root` itself."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    for sub in ("annotations", "images"):
        if (root / sub).is_dir() and any((root / sub).rglob("*.json")):
            return root / sub
    return root


def annotation_files(root: str | Path) -> list[Path]:
    """The sorted annotation files of a dataset folder (their index is the `image_id`)."""
    folder = annotation_dir(root)
    files = sorted(folder.rglob("*.json") if folder != Path(root) else folder.glob("*.json"))
    if not files:
        raise DatasetError(f"{root}: no Labelme annotation files (*.json) in annotations/, "
                           "images/ or the folder itself")
    return files


def stem(json_path: Path, folder: Path) -> str:
    """The image stem of an annotation file: its path under `folder`, without the suffix."""
    return json_path.relative_to(folder).with_suffix("").as_posix()


def image_stems(root: str | Path) -> list[str]:
    """The image stem of each annotation file (same order as `annotation_files`)."""
    folder = annotation_dir(root)
    return [stem(p, folder) for p in annotation_files(root)]


def image_cache_dir() -> Path:
    """Cache for images decoded from embedded `imageData`: $SPINE_D2_CACHE_DIR, else
    $XDG_CACHE_HOME/spine_d2, else ~/.cache/spine_d2; images go to its `labelme_images/`."""
    base = os.environ.get("SPINE_D2_CACHE_DIR")
    if not base:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spine_d2"
    return Path(base).expanduser().resolve() / "labelme_images"


def decode_to_cache(image_data: str) -> Path:
    """Decode an embedded image once into the cache (PNG, no EXIF: Labelme shows embedded data as
    stored); the file name is a hash of the data, so a second call finds it."""
    from labelme.utils import img_data_to_pil  # labelme's own decoder for imageData

    path = image_cache_dir() / f"{hashlib.sha1(image_data.encode()).hexdigest()}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        image = img_data_to_pil(base64.b64decode(image_data))
        if image.mode not in ("1", "L", "P", "RGB", "RGBA", "LA", "I;16"):
            image = image.convert("RGB")
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    return path


def _file_on_disk(raw: dict, json_path: Path, root: Path) -> tuple[Path | None, tuple[int, int] | None, str, str]:
    """(the image file imagePath names or None, its oriented size or None, imagePath, why it
    cannot be read or "")."""
    rel = PureWindowsPath(str(raw.get("imagePath") or "")).as_posix()
    if not rel:
        return None, None, rel, ""
    candidates = [Path(os.path.normpath(json_path.parent / rel)), root / "images" / Path(rel).name]
    on_disk = next((c for c in candidates if c.is_file()), None)
    if on_disk is None:
        return None, None, rel, ""
    try:
        with PIL.Image.open(on_disk) as im:
            return on_disk, oriented_size(im), rel, ""
    except (OSError, PIL.UnidentifiedImageError, ValueError) as e:
        return on_disk, None, rel, f"image {on_disk} cannot be read ({e})"


def resolve_image(raw: dict, fc: FileCheck, root: Path) -> tuple[str | None, int, int]:
    """(file_name, width, height) of the image the annotator saw; file_name None when the image is
    embedded and not yet decoded (decoded only for a good file, `decode_to_cache`)."""
    on_disk, file_size, rel, unreadable = _file_on_disk(raw, fc.json_path, root)
    if unreadable and not raw.get("imageData"):
        fc.add("image_unreadable", unreadable)
        return None, 0, 0
    if raw.get("imageData"):
        try:
            data = base64.b64decode(raw["imageData"], validate=False)
            with PIL.Image.open(io.BytesIO(data)) as im:
                embedded_size = im.size  # Labelme shows embedded data as stored
        except (binascii.Error, ValueError, TypeError, OSError, PIL.UnidentifiedImageError) as e:
            fc.add("image_unreadable", f"embedded imageData cannot be decoded ({e})")
            return None, 0, 0
        if file_size == embedded_size:  # the file shows the same picture: use it, no cache
            return str(on_disk.resolve()), *embedded_size
        return None, *embedded_size
    if on_disk is None:
        where = (f"imagePath {rel!r} → {os.path.normpath(fc.json_path.parent / rel)}" if rel
                 else "no imagePath")
        fc.add("image_missing", f"image not found ({where}) and no imageData embedded")
        return None, 0, 0
    return str(on_disk.resolve()), *file_size
