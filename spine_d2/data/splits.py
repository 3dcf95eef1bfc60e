"""Train/test splits of a dataset: from splits/train.txt and splits/test.txt, else seeded.

A split file holds one image stem per line; blank lines and lines starting with '#' are ignored.
When only one of the two files exists the other split is the rest of the images. Without split
files the images are shuffled with `split_seed` and round(test_fraction × n) go to test
(the study: 428 images, 0.3 → 300 train / 128 test).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from spine_d2.data.labelme import DatasetError

SPLITS = ("train", "test")


def read_split_file(path: Path, stems: Sequence[str]) -> list[str]:
    """The stems listed in one split file; an unknown or repeated stem is a DatasetError naming
    the file and line."""
    known, seen, out = set(stems), {}, []
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        stem = line.strip()
        if not stem or stem.startswith("#"):
            continue
        if stem not in known:
            hint = (f" (write the stem {Path(stem).stem!r})" if Path(stem).stem in known else "")
            raise DatasetError(f"{path} line {line_no}: unknown image {stem!r}: no annotation "
                               f"file has this stem{hint}")
        if stem in seen:
            raise DatasetError(f"{path} line {line_no}: {stem!r} listed twice (line {seen[stem]})")
        seen[stem] = line_no
        out.append(stem)
    return out


def seeded_split(stems: Sequence[str], test_fraction: float, seed: int) -> dict[str, list[str]]:
    """Shuffle the sorted stems with `seed`; the first round(test_fraction × n) are test."""
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1], got {test_fraction}")
    order = sorted(stems)
    perm = np.random.default_rng(seed).permutation(len(order))
    n_test = int(round(test_fraction * len(order)))
    test = {order[i] for i in perm[:n_test]}
    return {"train": [s for s in order if s not in test], "test": [s for s in order if s in test]}


def dataset_splits(root: str | Path, stems: Sequence[str], test_fraction: float = 0.3,
                   seed: int = 0) -> dict[str, list[str]]:
    """{"train": [...], "test": [...]} image stems (sorted order kept) for a dataset folder."""
    folder = Path(root) / "splits"
    files = {s: folder / f"{s}.txt" for s in SPLITS if (folder / f"{s}.txt").is_file()}
    if not files:
        return seeded_split(stems, test_fraction, seed)
    listed = {s: set(read_split_file(p, stems)) for s, p in files.items()}
    if len(listed) == 2:
        both = listed["train"] & listed["test"]
        if both:
            raise DatasetError(f"{folder}: {len(both)} image(s) in both train.txt and test.txt, "
                               f"e.g. {sorted(both)[0]!r}")
    else:
        (given, chosen), = listed.items()
        other = "test" if given == "train" else "train"
        listed[other] = set(stems) - chosen
    return {s: [stem for stem in stems if stem in listed[s]] for s in SPLITS}
