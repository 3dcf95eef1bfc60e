"""Writes an evaluation report (per_image.csv, summary.json, report.md/.html, figures/); degrees, Dice/IoU %.

The content (`spine_d2.evaluation.report_content`) is rendered twice: Markdown (figures as files
under figures/) and one self-contained HTML file from the Jinja2
template `templates/report.html.j2` (figures and overlays inlined as base64). This module is the
one that writes the report's files.

Nothing already on disk is overwritten: `write_report` writes into `out_dir` when it is absent or
empty, otherwise into the first free `out_dir_2`, `out_dir_3`, … and returns the directory used.
Next to the report it keeps what a later re-rendering needs (`config.yaml`, `code_version.txt`), so
`tools/report.py` can rebuild the whole report from per_image.csv alone.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2
import pandas as pd
from markupsafe import Markup, escape

from spine_d2 import provenance
from spine_d2.evaluation.agreement import summarize
from spine_d2.evaluation.report_content import Block, build_blocks, headline
from spine_d2.evaluation.study import REFERENCE_STUDY, StudyResults

TITLE = "Spinal alignment: evaluation report"


def new_report_dir(path: str | Path) -> Path:
    """`path` if it is absent or an empty directory, else the first free `path_2`, `path_3`, …"""
    path = Path(path)
    candidate, i = path, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        i += 1
        candidate = path.with_name(f"{path.name}_{i}")
    return candidate


def latest_report(run_dir: str | Path) -> Path | None:
    """The newest report directory (`eval`, `eval_2`, …) of a run, or None."""
    found = sorted(Path(run_dir).glob("eval*/summary.json"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def print_headline(report_dir: str | Path | None) -> None:
    """Print a report's path and its headline numbers beside the reference study's (the tools' last words)."""
    if report_dir is None:
        return
    report_dir = Path(report_dir)
    print(f"report: {report_dir / 'report.html'}")
    for line in headline(json.loads((report_dir / "summary.json").read_text())):
        print("  " + line)


# ----------------------------------------------------------------------------- rendering
def _cell(c: Any) -> str:
    return str(c).replace("|", "\\|").replace("\n", " ")


def _markdown_table(headers: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub table, cells unpadded: tabulate pads every cell to the column's widest, and one
    image's long notes made a report.md of megabytes."""
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows])


def to_markdown(blocks: Sequence[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "table":
            out.append(_markdown_table(b.headers, b.rows))
        elif b.kind == "figure":
            out.append(f"![{b.path}](figures/{b.path})\n\n*{b.text}*")
        elif b.kind == "pre":
            out.append("```\n" + b.text + "\n```")
    return "\n\n".join(out) + "\n"


def _emphasis(text: str) -> Markup:
    """Escaped text with the two Markdown emphases the content uses (**bold**, *italic*)."""
    t = str(escape(text))
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    return Markup(re.sub(r"\*(.+?)\*", r"<em>\1</em>", t))


_TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                                autoescape=True, keep_trailing_newline=True)
_TEMPLATES.filters.update(emphasis=_emphasis, b64=lambda data: base64.b64encode(data).decode("ascii"))


def to_html(blocks: Sequence[Block], title: str) -> str:
    return _TEMPLATES.get_template("report.html.j2").render(blocks=blocks, title=title)


# ----------------------------------------------------------------------------- entry points
def write_report(per_image: pd.DataFrame, out_dir: str | Path, *,
                 summary: Mapping[str, Any] | None = None,
                 overlays: Mapping[str, Any] | None = None, config_text: str | None = None,
                 code_version: str | None = None, title: str = TITLE,
                 study: StudyResults = REFERENCE_STUDY, source: str | None = None,
                 trained_on: str | None = None) -> Path:
    """Write per_image.csv, summary.json, report.md, report.html and figures/ → the directory used.

    `per_image`: the table of `spine_d2.evaluation.per_image` (e.g. from `per_image_table`);
    `summary`: only what per_image.csv cannot give is taken from it (coco_segm_ap, and extra
    keys such as coco_bbox_ap); everything else is recomputed from `per_image`, so the report's
    numbers always follow from its per_image.csv;
    `overlays`: {'best'|'median'|'worst'|other: image path, BGR uint8 array or JPEG bytes} (see
    `choose_examples`); `config_text`: the resolved config (YAML); `code_version`: e.g.
    `spine_d2.provenance.code_version()`. Never overwrites: see `new_report_dir`.
    """
    from spine_d2.evaluation.per_image import per_image_table

    per_image = per_image_table(per_image.to_dict("records"))
    given = dict(summary or {})
    summary = {**given, **summarize(per_image, coco_segm_ap=given.get("coco_segm_ap"))}
    blocks = build_blocks(per_image, summary, overlays=overlays, config_text=config_text, trained_on=trained_on,
                          code_version=code_version, title=title, study=study, source=source)
    out = new_report_dir(out_dir)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    per_image.to_csv(out / "per_image.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    if config_text:
        (out / "config.yaml").write_text(config_text.rstrip() + "\n")
    if code_version:
        (out / "code_version.txt").write_text(code_version.strip() + "\n")
    for b in blocks:
        if b.kind == "figure":
            (fig_dir / b.path).write_bytes(b.data)
    (out / "report.md").write_text(to_markdown(blocks))
    (out / "report.html").write_text(to_html(blocks, title))
    return out


def default_rerender_dir(per_image_csv: str | Path) -> Path:
    """Where a re-rendered report goes by default: `<csv folder>_rerender` beside the CSV's folder."""
    folder = Path(per_image_csv).resolve().parent
    return folder.with_name(f"{folder.name}_rerender")


def _read_text(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def rerender(per_image_csv: str | Path, out_dir: str | Path | None = None, *,
             title: str | None = None, overlays: Mapping[str, Any] | None = None) -> Path:
    """Rebuild a whole report from a per_image.csv (e.g. after editing the reference values).

    Everything is recomputed from the CSV; from the CSV's folder it carries over, when present,
    the COCO AP (and other keys not derived from the CSV) of summary.json, config.yaml,
    code_version.txt and the figures/overlay_*.jpg images. Writes into `out_dir` (default
    `default_rerender_dir`), never over an existing report.
    """
    from spine_d2.evaluation.per_image import read_per_image

    csv = Path(per_image_csv)
    per_image = read_per_image(csv)
    folder = csv.resolve().parent
    try:
        old = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        old = {}
    produced = (_read_text(folder / "code_version.txt") or "not recorded").strip()
    if overlays is None:
        overlays = {p.stem[len("overlay_"):]: p for p in sorted(folder.glob("figures/overlay_*.jpg"))}
    return write_report(per_image, out_dir or default_rerender_dir(csv),
                        summary=old if isinstance(old, dict) else {}, overlays=overlays,
                        config_text=_read_text(folder / "config.yaml"), title=title or TITLE,
                        code_version=f"{produced} (results); re-rendered by {provenance.code_version()}",
                        source=str(csv))
