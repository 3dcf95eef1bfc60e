"""spine_d2.serve: the web page and JSON API (tools/serve.py) over the prediction road; degrees, image frame.

Modules: `uploads` (a multipart upload into memory under byte and pixel limits, decoded with the
EXIF orientation applied), `results` (a Measurement as JSON with an inline overlay PNG),
`reference` (the study's and our benchmark's errors per angle), `checkpoints` (which model to
serve), `corrections` (endplates a reader moved → the angles again, a Labelme JSON), `app`
(`create_app`, the FastAPI app); `static/` holds the page (plain HTML/CSS/JS; `editor.js` the
movable endplates). The test helpers (a Labelme folder's ground truth posing as a model, the app
in a headless Chromium, the README's screenshot) are tests/standin.py and tests/browser.py.
"""
from spine_d2.serve.app import create_app
from spine_d2.serve.checkpoints import newest_checkpoint

__all__ = ["create_app", "newest_checkpoint"]
