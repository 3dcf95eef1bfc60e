"""Add a trained run to the zoo: python -m spine_d2.zoo.export RUN_DIR NAME --command "..." [--half] [--force]

Writes `<name>.pth` (the run's model_final.pth, its weights as trained, or as float16 with `--half`:
half the size, but the rounding moves a few films' measurements, so the benchmark is of another
model), `<name>.yaml` (its
d2_config.yaml) and `<name>.json` (the card: command, commit, phantom, training time and the run's
own evaluation, `eval/summary.json`), then MODEL_ZOO.md from every card. An entry is replaced only
by a model that beats it: a higher Dice and a mean TK/LL/SS error no larger than the entry's
evaluation as served now, or its own where none is recorded (`--force` overrides).

When test-time settings of an entry change after it was trained (its `<name>.yaml`), its
evaluation as served now goes on the card beside the run's own:
    python -m spine_d2.zoo.export served NAME SUMMARY_JSON --command "python tools/evaluate.py ..." [--note "..."]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

from spine_d2 import zoo
from spine_d2.zoo import ZooError

ANGLES = ("TK", "LL", "SS")


def _num(v, missing: float) -> float:
    return float(v) if isinstance(v, (int, float)) and v == v else missing


def _angle_error(summary: dict) -> float:
    vals = [_num((summary.get(a) or {}).get("mae"), float("inf")) for a in ANGLES]
    return sum(vals) / len(vals)


def _like_dice(new: dict, old: dict) -> tuple[float, float]:
    """The two benchmarks' Dice measured alike: of the sure masks (`dice_mean`) where both
    recorded every mask's apart (`all_dice_mean`), else of every mask (before the evaluator kept
    them apart, `dice_mean` scored every mask)."""
    key = "dice_mean" if "all_dice_mean" in new and "all_dice_mean" in old else "all_dice_mean"
    return tuple(_num(b.get(key, b.get("dice_mean")), 0.0) for b in (new, old))


def beats(new: dict, old: dict) -> bool:
    """Whether benchmark `new` beats `old`: higher Dice (`_like_dice`), and a mean TK/LL/SS MAE
    no larger (a missing value counts as the worst)."""
    dice_new, dice_old = _like_dice(new, old)
    return dice_new > dice_old and _angle_error(new) <= _angle_error(old)


def to_beat(card: dict) -> dict:
    """The benchmark a new model must beat to replace entry `card`: its evaluation as served now
    when one is recorded (today's test-time settings, measurement and phantom), else its run's own."""
    return (card.get("served") or card)["benchmark"]


def _commit() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _phantom(run_dir: Path) -> dict:
    """The dataset the run trained on, from its Hydra record."""
    record = run_dir / ".hydra" / "config.yaml"
    if not record.is_file():
        return {}
    ds = (yaml.safe_load(record.read_text()) or {}).get("dataset", {})
    return {"name": ds.get("name"), "root": ds.get("root"), "generate": ds.get("generate")}


def benchmark(summary: dict) -> dict:
    """A card's benchmark from an evaluation's summary.json: Dice (of the sure masks and, where
    recorded, of every mask), mIoU and per angle MAE, SD, R², n and missing."""
    bench = {k: summary[k] for k in ("n_images", "dice_mean", "dice_sd", "miou_mean", "miou_sd",
                                     "all_dice_mean", "all_dice_sd") if k in summary}
    bench.update({a: {k: summary[a][k] for k in ("mae", "sd", "r2", "n", "missing") if k in summary[a]}
                  for a in ("TK", "LL", "LL_S1", "SS", "PT", "PI") if isinstance(summary.get(a), dict)})
    return bench


def record_served(name: str, summary_path: str | Path, command: str, note: str | None = None) -> Path:
    """Put `summary_path` (an evaluation of zoo:`name` with the settings it is served with) on its
    card as `served`, with the command, commit and `note` (e.g. that the phantom changed since the
    model was trained); rewrites MODEL_ZOO.md. Returns the card."""
    if name not in zoo.names():
        raise ZooError(f"zoo:{name}: no such model (have: {', '.join(zoo.names()) or 'none'})")
    try:
        summary = json.loads(Path(summary_path).read_text())
    except (OSError, ValueError) as e:
        raise ZooError(f"{summary_path}: not a readable summary.json ({e})") from None
    path = zoo.ZOO_DIR / f"{name}.json"
    card = json.loads(path.read_text())
    card["served"] = {"command": command, "commit": _commit(),
                      "date": _now(), "benchmark": benchmark(summary)}
    if note:
        card["served"]["note"] = note
    path.write_text(json.dumps(card, indent=2) + "\n")
    write_model_zoo_md()
    return path


def export(run_dir: str | Path, name: str, command: str, training_minutes: float | None = None,
           force: bool = False, note: str | None = None, half: bool = False) -> Path:
    """Add run `run_dir` to the zoo as `name`, replacing an entry of that name only when it beats
    it (`to_beat`) or with `force`; `note` goes on the card; `half` stores the weights as float16.
    Returns the weights file written."""
    dest = zoo.ZOO_DIR
    run_dir = Path(run_dir)
    summary_file = run_dir / "eval" / "summary.json"
    if not (run_dir / "model_final.pth").is_file() or not summary_file.is_file():
        raise ZooError(f"{run_dir}: needs model_final.pth and eval/summary.json (a finished, evaluated run)")
    bench = benchmark(json.loads(summary_file.read_text()))
    if name in zoo.names() and not force and not beats(bench, old := to_beat(zoo.card(name))):
        raise ZooError(f"zoo:{name}: the new model does not beat the one shipped (Dice {_dice(bench)} vs "
                       f"{_dice(old)}, MAE TK / LL / SS {_maes(bench)} vs {_maes(old)}); --force replaces it")
    state = torch.load(run_dir / "model_final.pth", map_location="cpu", weights_only=True)
    model = {k: (v.half() if half and v.is_floating_point() else v) for k, v in state["model"].items()}
    torch.save({"model": model}, dest / f"{name}.pth")
    (dest / f"{name}.yaml").write_text((run_dir / "d2_config.yaml").read_text())
    info = {"name": name, "command": command, "commit": _commit(), "trained_on": _phantom(run_dir),
            "training_minutes": training_minutes, "benchmark": bench, "real_anatomy_dice": None,
            "date": _now(), "weights": "float16" if half else "as trained"}
    if note:
        info["note"] = note
    (dest / f"{name}.json").write_text(json.dumps(info, indent=2) + "\n")
    write_model_zoo_md(dest)
    return dest / f"{name}.pth"


def write_model_zoo_md(dest: Path | None = None) -> Path:
    """MODEL_ZOO.md (detectron2's style): one row per entry, then each entry's command."""
    dest = dest or zoo.ZOO_DIR
    rows = ["# spine_d2 model zoo", "",
            "Models trained on the synthetic phantom only (no patient data). `model.weights=zoo:<name>` "
            "fine-tunes one, `checkpoint=zoo:<name>` predicts, evaluates or serves with it.", "",
            "| name | trained on | time | Dice | MAE TK / LL / SS | commit | size |", "|---|---|---|---|---|---|---|"]
    details = []
    for p in sorted(dest.glob("*.json")):
        c = json.loads(p.read_text())
        served = c.get("served")
        b = to_beat(c)  # the numbers in the table: as served now where recorded
        ph = c.get("trained_on") or {}
        gen = ph.get("generate") or {}
        mb = p.with_suffix(".pth").stat().st_size / 2**20 if p.with_suffix(".pth").is_file() else 0
        rows.append(f"| `zoo:{c['name']}` | {ph.get('name', '?')} (n={gen.get('n', '?')}, seed {gen.get('seed', '?')}) | "
                    f"{c.get('training_minutes') or '?'} min | {_dice(b)} | {_maes(b)} | "
                    f"`{c['commit']}` | {mb:.0f} MB |")
        own = c["benchmark"]
        details += ["", f"## {c['name']}", "", "```bash", c["command"], "```",
                    f"Benchmark: the phantom's test split ({own.get('n_images', '?')} images). The run's own "
                    f"evaluation ({c['date']}): Dice {_dice(own)}, MAE TK / LL / SS {_maes(own)}."
                    + (f" {c['note']}" if c.get("note") else "")]
        if served:
            details += [f"As served now (its `{c['name']}.yaml`: the test-time settings added since), the "
                        f"numbers in the table: `{served['command']}` ({served['date']}, commit `{served['commit']}`)."
                        + (f" {served['note']}" if served.get("note") else "")]
    out = dest / "MODEL_ZOO.md"
    out.write_text("\n".join(rows + details) + "\n")
    return out


def _dice(b: dict) -> str:
    """Dice as the card shows it: of the sure masks, every mask's beside it where recorded (before
    the evaluator kept them apart, `dice_mean` was every mask's)."""
    every = f" (every mask {100 * _num(b['all_dice_mean'], 0.0):.1f} %)" if "all_dice_mean" in b else ""
    return f"{100 * _num(b.get('dice_mean'), 0.0):.1f} %{every}"


def _maes(b: dict) -> str:
    return " / ".join(f"{b[a]['mae']:.1f}°" if _num((b.get(a) or {}).get("mae"), -1) >= 0 else "–" for a in ANGLES)


def main_served(argv) -> None:
    ap = argparse.ArgumentParser(prog="python -m spine_d2.zoo.export served",
                                 description="put an evaluation of a zoo model as served on its card")
    ap.add_argument("name")
    ap.add_argument("summary", help="summary.json of tools/evaluate.py checkpoint=zoo:NAME")
    ap.add_argument("--command", required=True, help="the command that produced it")
    ap.add_argument("--note", help="what a reader of the card should know about this evaluation")
    a = ap.parse_args(argv)
    try:
        print(f"wrote {record_served(a.name, a.summary, a.command, a.note)}")
    except ZooError as e:
        raise SystemExit(f"error: {e}")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["served"]:
        return main_served(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("name")
    ap.add_argument("--command", required=True, help="the command that trained the run")
    ap.add_argument("--minutes", type=float, default=None, help="training time, minutes")
    ap.add_argument("--force", action="store_true", help="replace an entry the new model does not beat")
    ap.add_argument("--half", action="store_true", help="weights as float16: half the size, not the same model")
    ap.add_argument("--note", help="what a reader of the card should know about the model")
    a = ap.parse_args(argv)
    try:
        print(f"wrote {export(a.run_dir, a.name, a.command, a.minutes, a.force, a.note, a.half)}")
    except ZooError as e:
        raise SystemExit(f"error: {e}")


if __name__ == "__main__":
    main()
