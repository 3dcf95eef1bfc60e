"""Re-render a report from per_image.csv: python tools/report.py per_image=FILE.csv [out=DIR].

Recomputes every statistic, table and figure from the CSV (e.g. after editing the reference
values) and writes summary.json, report.md, report.html and figures/ into a new directory: `out`,
or by default `<csv folder>_rerender` beside the CSV's folder; an existing non-empty directory is
never overwritten (`_2`, `_3`, … is used instead). Prints the report's path and headline numbers.
"""
import sys
import warnings

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated")  # noise from d2

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from spine_d2.evaluation.per_image import PerImageError  # noqa: E402


@hydra.main(config_path="../conf", config_name="report", version_base="1.3")
def main(cfg: DictConfig) -> None:
    import json

    from spine_d2.evaluation.report import headline, rerender

    try:
        out = rerender(cfg.per_image, cfg.out, title=cfg.title)
    except (PerImageError, ValueError) as e:
        sys.exit(f"error: {e}")
    summary = json.loads((out / "summary.json").read_text())
    print(f"report: {out / 'report.html'}")
    for line in headline(summary):
        print("  " + line)


if __name__ == "__main__":
    main()
