"""Re-render a report from per_image.csv: python tools/report.py per_image=FILE.csv [out=DIR].

Recomputes every statistic, table and figure from the CSV (e.g. after editing the reference
values) and writes summary.json, report.md, report.html and figures/ into a new directory: `out`,
or by default `<csv folder>_rerender` beside the CSV's folder; an existing non-empty directory is
never overwritten (`_2`, `_3`, … is used instead). Prints the report's path and headline numbers.
"""
import sys

from spine_d2.library_warnings import hide_library_warnings

hide_library_warnings()

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from spine_d2.evaluation.per_image import PerImageError  # noqa: E402


@hydra.main(config_path="../conf", config_name="report", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from spine_d2.evaluation.report import print_headline, rerender

    try:
        out = rerender(cfg.per_image, cfg.out, title=cfg.title)
    except (PerImageError, ValueError) as e:
        sys.exit(f"error: {e}")
    print_headline(out)


if __name__ == "__main__":
    main()
