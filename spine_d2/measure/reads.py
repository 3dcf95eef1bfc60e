"""Two reads of one photo: the model's detections on the photo and on its mirror image (mapped
back), each measured alone, beside the fused detections (the geometry drawn; `test.flip`,
spine_d2/engine/flip.py). Where the two reads of an angle lie more than `measure.reads_apart`
degrees apart one of them went grossly wrong (a level named one off, a plate misread, the wrong
anterior side), and the fused detections, which keep the photo's masks and names, follow the
photo's read whichever it is: the angle is left out with both readings as the reason. Where
they agree, the angle is the mean of the two reads (`measure.reads_mean`; SS, PT and PI together,
so that PI = PT + SS still holds): the fused detections average only the corners the two runs agree
on and keep the photo's femoral heads, so the mirrored run's heads and plates count only there.
Geometry (endplates, heads, the overlay) stays the fused measurement's. benchmarks/README.md has
what the rule withholds, how often it was wrong, and what the mean changes.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

from spine_d2.angles import PELVIC_ANGLES, Angle
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
    """`angles` (degrees) with each measured angle that all `reads` (two or more) measured replaced
    by the reads' mean; SS, PT and PI only all together, where the reads measured each of them
    that `angles` has (so that PI = PT + SS holds as it holds in each read)."""
    if len(reads) < 2:
        return dict(angles)

    def both(name: str) -> bool:
        return all(name in r and r[name].measured for r in reads)

    pelvis = all(both(n) for n in PELVIC_ANGLES if n in angles and angles[n].measured)
    out = dict(angles)
    for name, angle in angles.items():
        if angle.measured and both(name) and (pelvis or name not in PELVIC_ANGLES):
            out[name] = Angle(sum(r[name].value for r in reads) / len(reads))
    return out


def measure_with_reads(instances: Sequence[Instance], reads: Sequence[Sequence[Instance]],
                       image_shape: Sequence[int], class_names: Sequence[str] | None = None, cfg: Any = None,
                       image=None) -> Measurement:
    """`measure_instances` of `instances` (the fused detections), its angles checked against the
    `reads` (each read's instances, measured alone in the same frame: `without_disagreeing_reads`)
    and, with `reads_mean`, the rest the reads' mean (`mean_of_reads`)."""
    c = MeasureConfig.from_cfg(cfg)
    m = measure_instances(instances, image_shape, class_names, c, image=image)
    if (c.reads_apart <= 0 and not c.reads_mean) or len(reads) < 2:
        return m
    alone = measure_reads(reads, image_shape, class_names, c, m.correction)
    angles = mean_of_reads(m.angles, alone) if c.reads_mean else m.angles
    return replace(m, angles=without_disagreeing_reads(angles, alone, c.reads_apart))


def measure_reads(reads: Sequence[Sequence[Instance]], image_shape: Sequence[int],
                  class_names: Sequence[str] | None, cfg: Any, frame: FrameEstimate | None) -> list[dict[str, Angle]]:
    """Each read's angles, its instances measured alone in `frame` (the fused measurement's
    `correction`, so that all are in one frame)."""
    return [measure_instances(r, image_shape, class_names, cfg, frame=frame).angles for r in reads]
