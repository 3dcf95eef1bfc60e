"""The web app: one page and a JSON API that measure TK, LL, LL_S1, SS, PT, PI (degrees) on uploaded photos.

`create_app(predictor, measure_cfg, ...)` wires the same road as tools/predict.py: an upload is
read into memory (`uploads.read_upload`), decoded with the EXIF orientation applied
(`uploads.decode_upload`), measured by `spine_d2.engine.inference.measure_image` and drawn by
`draw_overlay` (`results`). The model runs behind a lock in the server's thread pool: requests are
answered concurrently, model calls one at a time. Uploads are not written anywhere unless
`keep_uploads` names a folder. Routes: `GET /` (the page), `POST /api/measure`, `POST /api/angles`
(the angles again from endplates a reader moved, `corrections`), `POST /api/labelme` (the photo's
Labelme JSON with those endplates), `GET /api/health`, `GET /api/reference`, OpenAPI docs at `/docs`.
"""
from __future__ import annotations

import datetime
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from spine_d2.data.images import within_pixels
from spine_d2.engine.inference import MAX_PIXELS, measure_image, scaled_copy_note
from spine_d2.measure import MeasureConfig
from spine_d2.measure.frame_angles import HEADS_NOT_IN_VIEW
from spine_d2.serve.corrections import CorrectionError, labelme_with_corrections, recompute
from spine_d2.serve.reference import reference_figures
from spine_d2.serve.results import measurement_json, overlay_png
from spine_d2.serve.uploads import FIELD, Upload, UploadError, decode_upload, read_upload

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")


class LockedPredictor:
    """A predictor whose calls run one at a time (model inference is not assumed thread-safe)."""

    def __init__(self, predictor: Any):
        self.predictor = predictor
        self.class_names = predictor.class_names
        self._lock = threading.Lock()

    def __call__(self, image_bgr):
        with self._lock:
            return self.predictor(image_bgr)

    def predict(self, image_bgr):
        """(Instances, reads) as `SpinePredictor.predict`; no reads from a predictor without it."""
        with self._lock:
            inner = getattr(self.predictor, "predict", None)
            return inner(image_bgr) if inner is not None else (self.predictor(image_bgr), [])


class AngleOut(BaseModel):
    value: Optional[float] = None  # degrees; null when it could not be measured
    reason: str = ""               # why it is null, in plain words


class MeasureOut(BaseModel):
    image: str
    width: int
    height: int
    units: str
    angles: dict[str, AngleOut]
    frame: str           # radiograph | image
    frame_text: str
    frame_detail: str
    method: str
    flags: list[str]
    notes: str
    row: dict[str, Any]  # the predictions.csv row: image, TK, LL, LL_S1, SS, PT, PI, frame, notes
    overlay_png: str     # data:image/png;base64,… (pixels only: no EXIF)
    geometry: dict[str, Any]  # what the angles came from (image frame, px): send it back, moved, to /api/angles
    labelme: dict[str, Any]   # the photo's Labelme pre-annotation (imagePath: the upload's file name)
    seconds: float


class GeometryIn(BaseModel):
    """The `geometry` of a /api/measure answer, endplates moved (image frame of the photo, px)."""

    endplates: dict[str, dict[str, list[list[float]]]]  # level → superior|inferior → [anterior, posterior] [x, y]
    femoral_heads: list[list[float]] = []               # [[cx, cy, r], …]
    homography: Optional[list[list[float]]] = None      # radiograph → image, when measured in the radiograph frame
    anterior_sign: int = 1                              # +1: anterior points to +x in the image
    excluded: dict[str, str] = {}                       # level → why it feeds no angle
    heads_reason: str = HEADS_NOT_IN_VIEW
    frame: str = "image"                                # informative; the homography decides
    corrected: list[str] = []                           # endplates the reader moved: "L1 superior", …
    image: str = ""                                     # for the CSV row
    notes: str = ""                                     # the measurement's notes, for the CSV row


class AngleCorrectedOut(AngleOut):
    corrected: bool = False  # an endplate this angle uses was moved by the reader


class AnglesOut(BaseModel):
    angles: dict[str, AngleCorrectedOut]
    frame: str
    corrected: list[str]
    note: str
    row: dict[str, Any]


class LabelmeIn(BaseModel):
    labelme: dict[str, Any]                             # the document /api/measure returned
    endplates: dict[str, dict[str, list[list[float]]]] = {}  # the corrected endplates, image frame


class Problem(BaseModel):
    detail: str


def _upload_body_schema() -> dict:
    schema = {"type": "object", "required": [FIELD],
              "properties": {FIELD: {"type": "string", "format": "binary",
                                     "description": "a phone photo or screenshot of a lateral X-ray"}}}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def keep_upload(folder: Path, upload: Upload) -> Path:
    """Write an upload's bytes, as sent, to a new file in `folder` (never overwriting one)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(upload.name).name)[-80:] or "upload"
    path = folder / f"{stamp}_{safe}"
    with open(path, "xb") as f:
        f.write(upload.data)
    return path


class _Measurer:
    """What /api/measure does with one upload: decode, keep when asked, measure, draw."""

    def __init__(self, model: LockedPredictor, cfg: MeasureConfig, max_pixels: int, keep: Path | None,
                 overlay_max_side: int, scale_pixels: int = MAX_PIXELS):
        self.model, self.cfg, self.max_pixels, self.keep = model, cfg, max_pixels, keep
        self.overlay_max_side, self.scale_pixels = overlay_max_side, scale_pixels

    def __call__(self, upload: Upload) -> dict:
        start = time.perf_counter()
        image = decode_upload(upload, self.max_pixels)
        if self.keep is not None:
            log.info(f"upload kept: {keep_upload(self.keep, upload)}")
        work = within_pixels(image, self.scale_pixels)  # a very large photo: measured on a copy
        m = measure_image(self.model, work, self.cfg)
        out = measurement_json(upload.label, m, work.shape, overlay_png(work, m, self.overlay_max_side), image.shape)
        if work is not image:
            note = scaled_copy_note(work.shape, image.shape, self.scale_pixels)
            out["notes"] = out["row"]["notes"] = f"{note}; {out['notes']}"
        out["seconds"] = round(time.perf_counter() - start, 3)
        return out


async def _plain_422(request: Request, exc: RequestValidationError):
    """A request body the endpoint does not take: one sentence naming the fields, not pydantic's list."""
    where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg', '')}"
                      for e in exc.errors())
    return JSONResponse({"detail": f"the request body is not what this endpoint takes ({where})"}, status_code=422)


def _info_routes(app: FastAPI, model: LockedPredictor, model_name: str, keep: Path | None, limits: dict,
                 accuracy_dir, model_config: str | None, trained_on: str | None) -> None:
    """`GET /` (the page), `/api/health`, `/api/reference`."""

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/health")
    def health() -> dict:
        """The server is up; which model it serves and its upload limits."""
        return {"status": "ok", "model": model_name, "trained_on": trained_on, "classes": list(model.class_names),
                "keep_uploads": keep is not None, **limits}

    @app.get("/api/reference")
    def reference() -> dict:
        """The reference study's and our latest benchmark's mean absolute errors per angle (degrees)."""
        return {**reference_figures(accuracy_dir, config=model_config), "model": model_name}


def _measure_route(app: FastAPI, measure: _Measurer, max_upload_bytes: int) -> None:
    """`POST /api/measure`: one photo in, angles, frame, notes and overlay out."""

    @app.post("/api/measure", response_model=MeasureOut, openapi_extra=_upload_body_schema(),
              responses={413: {"model": Problem, "description": "file or image too large"},
                         415: {"model": Problem, "description": "not an image / not a multipart upload"},
                         422: {"model": Problem, "description": "empty, damaged or missing image"}})
    async def measure_photo(request: Request):
        """Measure one photo (multipart field `file`): angles, frame, notes and the overlay PNG."""
        try:
            upload = await read_upload(request.headers, request.stream(), max_upload_bytes)
            return await run_in_threadpool(measure, upload)
        except UploadError as e:
            return JSONResponse({"detail": e.message}, status_code=e.status)
        except Exception as e:  # noqa: BLE001 - one photo's failure must not stop the server
            log.exception("measurement failed")
            return JSONResponse({"detail": f"the measurement failed on this photo ({type(e).__name__}: {e})"},
                                status_code=500)


def _correction_routes(app: FastAPI) -> None:
    """`POST /api/angles` and `POST /api/labelme`: a reader's moved endplates."""

    @app.post("/api/angles", response_model=AnglesOut, responses={422: {"model": Problem}})
    def angles(body: GeometryIn):
        """The six angles again from a /api/measure `geometry` whose endplates a reader moved (image
        frame, px), by the measurement's own angle definitions and frame."""
        try:
            return recompute(body.model_dump())
        except CorrectionError as e:
            return JSONResponse({"detail": str(e)}, status_code=422)

    @app.post("/api/labelme", responses={422: {"model": Problem}})
    def labelme(body: LabelmeIn) -> dict:
        """The photo's Labelme JSON (from /api/measure) with the corrected endplates as corner
        points (`L1_sa`, `L1_sp`, … flagged `corrected`): save it beside the photo."""
        try:
            return labelme_with_corrections(body.model_dump())
        except CorrectionError as e:
            return JSONResponse({"detail": str(e)}, status_code=422)


def create_app(predictor: Any, measure_cfg: Any = None, *, max_upload_bytes: int = 25_000_000,
               max_pixels: int = 50_000_000, keep_uploads: str | Path | None = None,
               accuracy_dir: str | Path | None = "benchmarks/results", model_name: str = "",
               model_config: str | None = None, overlay_max_side: int = 1600,
               trained_on: str | None = None, scale_pixels: int = MAX_PIXELS) -> FastAPI:
    """The FastAPI app serving `predictor` (a `SpinePredictor` or anything with `class_names` and
    `__call__(bgr) -> Instances`); see the module docstring. `model_config` (the served run's
    schedule name) picks the benchmark shown beside each angle; `trained_on` (in words) is said on
    the page, so that nobody takes a phantom-trained model for a clinically validated one. A photo
    of more than `scale_pixels` pixels is measured on a copy scaled down to that (as tools/predict.py
    does): the answer's geometry, overlay, width and height are the copy's, its Labelme document the
    photo's."""
    cfg = MeasureConfig.from_cfg(measure_cfg)  # checked once, at start
    model = LockedPredictor(predictor)
    keep = Path(keep_uploads) if keep_uploads else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    limits = {"max_upload_mb": max_upload_bytes / 1e6, "max_megapixels": max_pixels / 1e6,
              "scale_megapixels": scale_pixels / 1e6}
    app = FastAPI(title="spine_d2", version="0.1.0",
                  description="Spinal sagittal angles (TK, LL, LL_S1, SS, PT, PI; degrees) from a phone "
                              "photo or screenshot of a lateral X-ray. Uploads are kept in memory only.")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(RequestValidationError, _plain_422)
    _info_routes(app, model, model_name, keep, limits, accuracy_dir, model_config, trained_on)
    _measure_route(app, _Measurer(model, cfg, max_pixels, keep, overlay_max_side, scale_pixels), max_upload_bytes)
    _correction_routes(app)
    return app
