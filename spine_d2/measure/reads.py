"""Two reads of one photo: the model's detections on the photo and on its mirror image (mapped
back), each measured alone, beside the fused detections (the geometry drawn; `test.flip`,
spine_d2/engine/flip.py). Where the two reads of an angle lie more than `measure.reads_apart`
degrees apart one of them went grossly wrong (a level named one off, a plate misread, the wrong
anterior side), and the fused detections, which keep the photo's masks and names, follow the
photo's read whichever it is: the angle is left out with both readings as the reason. Where
they agree on PT, it is the mean of the two reads and PI moves with it (`measure.reads_mean`): the
fused detections average the runs' corners but keep the photo's femoral heads, so the mirrored
run's hip axis counts only there. Geometry (endplates, heads, the overlay) stays the fused
measurement's. benchmarks/README.md has what the rule withholds, how often it was wrong, and what
the mean changes (PT better on 10 of 11 run-and-seed sets; averaging TK, LL, LL_S1 and SS so
was not, SS worse on every new seed set).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

from spine_d2.angles import Angle
from spine_d2.measure.config import MeasureConfig
from spine_d2.measure.instances import Instance
from spine_d2.measure.pipeline import Measurement, measure_instances
from spine_d2.measure.rectify import FrameEstimate


def without_disagreeing_reads(angles: Mapping[str, Angle], reads: Sequence[Mapping[str, Angle]],
                              max_apart: float) -> dict[str, Angle]:
    """`angles` (degrees) with each measured angle that two of `reads` (each a measurement's
    angles) both read more than `max_apart` degrees apart left out; `max_apart` 0: unchanged."""
    out = dict(angles)
    for name, angle in angles.items():
        seen = [r[name].value for r in reads if name in r and r[name].measured]
        if max_apart > 0 and angle.measured and len(seen) >= 2 and max(seen) - min(seen) > max_apart:
            out[name] = Angle.missing(f"the photo and its mirror image read {min(seen):.0f}° and "
                                      f"{max(seen):.0f}° (more than {max_apart:g}° apart)")
    return out


def mean_of_reads(angles: Mapping[str, Angle], reads: Sequence[Mapping[str, Angle]]) -> dict[str, Angle]:
    """`angles` (degrees) with PT, where it and all `reads` (two or more) measured it, the reads'
    mean, and PI moved with it (PI = PT + SS holds as before); the other angles unchanged. The
    fused detections already average S1's corners and the endplates' over the runs, but keep the
    photo's femoral heads: the hip axis PT rests on is the one part that only the reads see twice."""
    out = dict(angles)
    pt = angles.get("PT")
    if len(reads) < 2 or pt is None or not pt.measured or not all("PT" in r and r["PT"].measured for r in reads):
        return out
    out["PT"] = Angle(sum(r["PT"].value for r in reads) / len(reads))
    if "PI" in angles and angles["PI"].measured:
        out["PI"] = Angle(angles["PI"].value + out["PT"].value - pt.value)
    return out


def measure_with_reads(instances: Sequence[Instance], reads: Sequence[Sequence[Instance]],
                       image_shape: Sequence[int], class_names: Sequence[str] | None = None, cfg: Any = None,
                       image=None) -> Measurement:
    """`measure_instances` of `instances` (the fused detections), its angles checked against the
    `reads` (each read's instances, measured alone in the same frame: `without_disagreeing_reads`)
    and, with `reads_mean`, PT the reads' mean (`mean_of_reads`)."""
    c = MeasureConfig.from_cfg(cfg)
    m = measure_instances(instances, image_shape, class_names, c, image=image)
    if (c.reads_apart <= 0 and not c.reads_mean) or len(reads) < 2:
        return m
    alone = measure_reads(reads, image_shape, class_names, c, m.correction)
    angles = without_disagreeing_reads(m.angles, alone, c.reads_apart)
    return replace(m, angles=mean_of_reads(angles, alone) if c.reads_mean else angles)


def measure_reads(reads: Sequence[Sequence[Instance]], image_shape: Sequence[int],
                  class_names: Sequence[str] | None, cfg: Any, frame: FrameEstimate | None) -> list[dict[str, Angle]]:
    """Each read's angles, its instances measured alone in `frame` (the fused measurement's
    `correction`, so that all are in one frame)."""
    return [measure_instances(r, image_shape, class_names, cfg, frame=frame).angles for r in reads]
