"""Record an evaluation's summary.json as benchmarks/results/accuracy-<config>.json, with provenance.

    python benchmarks/record_accuracy.py SUMMARY_JSON CONFIG "COMMAND THAT PRODUCED IT" [NOTE]

Keeps the issue's schema (dice_mean, dice_sd, miou_mean, miou_sd, coco_segm_ap, and per parameter
mae, sd, bias, r2, slope_deg, s, n, missing, …) and adds date, machine, commit and the command.
"""
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def main(summary_path: str, config: str, command: str, note: str = "") -> None:
    summary = json.loads(Path(summary_path).read_text())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=RESULTS.parent).stdout.strip()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    record = {"config": config, "command": command, "note": note,
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{device}, {torch.get_num_threads()} threads, {platform.platform()}",
              "commit": commit, **summary}
    out = RESULTS / f"accuracy-{config}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
