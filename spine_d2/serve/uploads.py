"""Uploaded photos: a multipart body read into memory under a byte limit, checked, decoded (BGR, EXIF applied).

Nothing here writes to disk: the body is parsed as it streams in (python-multipart's streaming
parser) and the image part is kept in memory, so a photo never lands in a temporary file (the
framework's own form parsing spools parts over 1 MB to one). Every bad upload raises an
`UploadError` carrying the HTTP status and a message in plain words: 413 too many bytes or
pixels, 415 not an image (or not a multipart form), 422 empty, damaged or missing. Decoding is
`spine_d2.data.images.decode_image`, the project's one reader (HEIC and 16-bit PNG/TIFF included),
after a check of the pixel count that reads only the image's header.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator

import numpy as np
import PIL.Image
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from spine_d2.data.images import READABLE, ImageReadError, NotAnImageError, decode_image, image_size

FIELD = "file"             # the multipart field that carries the image
FORM_OVERHEAD = 64 * 1024  # bytes of multipart framing and small fields allowed beside the image
DRAIN_FACTOR = 4           # an oversized body is read (and dropped) up to this many limits, then cut


class UploadError(Exception):
    """A bad upload: `status` (HTTP 4xx) and a message a clinician can act on."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Upload:
    """One uploaded file, in memory: the name the browser gave (may be empty) and its bytes."""

    name: str
    data: bytes
    content_type: str = ""

    @property
    def label(self) -> str:
        return self.name or "upload"


def megabytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n < 1e7 else f"{n / 1e6:.0f} MB"


def too_large(max_bytes: int, size: int | None = None) -> UploadError:
    size_text = f"is {megabytes(size)}" if size else "is larger than that"
    return UploadError(413, f"the file {size_text}: this server takes photos up to {megabytes(max_bytes)}; "
                            "send a smaller photo or a screenshot")


class _Collector:
    """python-multipart callbacks that keep the first part named `field` (up to `max_bytes`)."""

    def __init__(self, field: str, max_bytes: int):
        self.field, self.max_bytes = field, max_bytes
        self.upload: Upload | None = None
        self.too_large = False
        self._headers: dict[str, str] = {}
        self._hname = self._hvalue = b""
        self._buf: bytearray | None = None
        self._name = self._type = ""

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_header_field": self._hfield,
                "on_header_value": self._hval, "on_header_end": self._hend,
                "on_headers_finished": self._headers_done, "on_part_data": self._data,
                "on_part_end": self._end}

    def _begin(self):
        self._headers, self._buf = {}, None

    def _hfield(self, data, start, end):
        self._hname += data[start:end]

    def _hval(self, data, start, end):
        self._hvalue += data[start:end]

    def _hend(self):
        self._headers[self._hname.decode("latin-1").lower()] = self._hvalue.decode("latin-1")
        self._hname = self._hvalue = b""

    def _headers_done(self):
        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        if params.get(b"name", b"").decode("latin-1") == self.field and self.upload is None:
            self._buf = bytearray()
            self._name = params.get(b"filename", b"").decode("utf-8", "replace")
            self._type = self._headers.get("content-type", "")

    def _data(self, data, start, end):
        if self._buf is None or self.too_large:
            return
        if len(self._buf) + (end - start) > self.max_bytes:
            self.too_large, self._buf = True, bytearray()  # drop what came: it is not used
            return
        self._buf += data[start:end]

    def _end(self):
        if self._buf is not None and not self.too_large:
            self.upload = Upload(self._name, bytes(self._buf), self._type)
        self._buf = None


async def read_upload(headers, stream: AsyncIterator[bytes], max_bytes: int, field: str = FIELD) -> Upload:
    """The image part of a multipart/form-data request body, in memory, or an UploadError.

    `headers`: the request's (a mapping with lower-case keys); `stream`: its body in chunks. The
    limit is on the image part; a body far beyond it is dropped as it comes and then cut off.
    """
    ctype, params = parse_options_header(headers.get("content-type"))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError(415, f"send the photo as a multipart/form-data upload with the image in the field "
                               f"'{field}' (got content type {ctype.decode('latin-1') or 'none'})")
    declared = headers.get("content-length", "")
    declared = int(declared) if declared.isdigit() else None
    collector = _Collector(field, max_bytes)
    parser = MultipartParser(params[b"boundary"], collector.callbacks())
    total = 0
    try:
        async for chunk in stream:
            total += len(chunk)
            if total > DRAIN_FACTOR * max_bytes + FORM_OVERHEAD:
                break  # stop reading: the connection is closed after the answer
            if not collector.too_large and total <= max_bytes + FORM_OVERHEAD:
                parser.write(chunk)
        else:
            if not collector.too_large and total <= max_bytes + FORM_OVERHEAD:
                parser.finalize()
    except MultipartParseError as e:
        raise UploadError(422, f"the upload is not a well-formed multipart form ({e})") from None
    if collector.too_large or total > max_bytes + FORM_OVERHEAD:
        raise too_large(max_bytes, declared)
    if collector.upload is None:
        raise UploadError(422, f"no image in the upload: send it in the multipart field '{field}'")
    return collector.upload


def decode_upload(upload: Upload, max_pixels: int) -> np.ndarray:
    """BGR uint8 (EXIF orientation applied) of an upload, or an UploadError saying what is wrong.

    The pixel count is checked from the header before the image is decoded."""
    name = upload.label
    if not upload.data:
        raise UploadError(422, f"{name}: the file is empty (0 bytes)")
    try:
        w, h = image_size(upload.data, name)
    except PIL.Image.DecompressionBombError:
        raise UploadError(413, f"{name}: the image has far more pixels than this server decodes "
                               f"(limit {max_pixels / 1e6:g} megapixels)") from None
    except NotAnImageError:
        raise UploadError(415, f"{name}: not an image this server can read ({READABLE})") from None
    except ImageReadError as e:
        raise UploadError(422, str(e)) from None
    if w * h > max_pixels:
        raise UploadError(413, f"{name}: the image is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels); "
                               f"this server takes up to {max_pixels / 1e6:g} megapixels: send a smaller "
                               "photo or a screenshot")
    try:
        return decode_image(upload.data, name)
    except ImageReadError as e:
        detail = str(e).split(": ", 1)[-1]
        raise UploadError(422, f"{name}: the image is damaged or incomplete (a truncated file?) and "
                               f"could not be decoded: {detail}") from None
