"""The phantom's films side by side: docs/phantom_films.jpg (and, given old films, the before/after).

    python docs/phantom_figure.py                       # films of seed 3, images 0-3
    python docs/phantom_figure.py --old DIR             # DIR/old_film_<i>.png: a row of older films above

Raw films (radiograph frame, before any photo or screenshot), each with its view, exposure and
findings; with --old, a row of films from an earlier renderer above.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from spine_d2.synthetic.anatomy import build_anatomy, sample_patient
from spine_d2.synthetic.knobs import knobs_for
from spine_d2.synthetic.pathology import Pathology
from spine_d2.synthetic.radiograph import render_radiograph

CELL = 420


def _tile(img: np.ndarray, caption: str) -> np.ndarray:
    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img
    s = (CELL - 24) / max(img.shape[:2])
    img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    tile = np.full((CELL, CELL, 3), 32, np.uint8)
    y0, x0 = 22 + (CELL - 24 - img.shape[0]) // 2, (CELL - img.shape[1]) // 2
    tile[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    cv2.putText(tile, caption, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (220, 220, 220), 1, cv2.LINE_AA)
    return tile


def films(seed: int, n: int, **knobs) -> list[np.ndarray]:
    """Tiles of `n` raw films of patients (seed, i), with their view, exposure and findings."""
    k = knobs_for("realistic", **knobs)
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        patient = sample_patient(rng, k.deformity_fraction, k.cover_fraction)
        path = Pathology.sample(rng, k.pathology_fraction, k.hardware_fraction)
        film = render_radiograph(patient, build_anatomy(patient, rng, path), rng, k, False, path)
        found = ", ".join(path.describe()) or "no findings"
        out.append(_tile(film.image, f"{film.info['view']}, {film.info['exposure']}; {found}"[:58]))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--old", type=Path, help="folder of old_film_<i>.png to show above")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("phantom_films.jpg"))
    args = ap.parse_args(argv)
    rows = [np.hstack(films(args.seed, args.n, partial_fraction=0.5))]
    if args.old:
        old = [_tile(cv2.imread(str(args.old / f"old_film_{i}.png")), "before: drawn in 2-D") for i in range(args.n)]
        rows.insert(0, np.hstack(old))
    cv2.imwrite(str(args.out), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
