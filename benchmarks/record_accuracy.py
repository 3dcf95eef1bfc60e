"""Record an evaluation's summary.json as benchmarks/results/accuracy-<config>.json, with provenance.

    python benchmarks/record_accuracy.py SUMMARY_JSON CONFIG "COMMAND THAT PRODUCED IT" [NOTE]

Keeps the issue's schema (dice_mean, dice_sd, miou_mean, miou_sd, coco_segm_ap, and per parameter
mae, sd, bias, r2, slope_deg, s, n, missing, …) and adds date, machine, commit and the command.
"""
import json
import sys
from pathlib import Path

import torch

from _common import provenance

RESULTS = Path(__file__).resolve().parent / "results"


def main(summary_path: str, config: str, command: str, note: str = "") -> None:
    summary = json.loads(Path(summary_path).read_text())
    meta = provenance("benchmarks/record_accuracy.py", [], torch_threads=torch.get_num_threads(),
                      gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, load=False)
    record = {"config": config, "command": command, "note": note, "date": meta["date"],
              "machine": meta["machine"], "commit": meta["commit"], **summary}
    out = RESULTS / f"accuracy-{config}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
