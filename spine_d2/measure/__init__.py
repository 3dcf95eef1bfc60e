"""spine_d2.measure: masks or polygons (image frame, px) → clean-up → levels → endplates → angles (degrees).

Modules: `instances` (what is measured, converters from predictions and dataset dicts),
`cleanup` (strays, duplicates, centres off the chain: our turn rule or the study's slope rule),
`naming` (levels),
`endplates` (by the body's rectangle or its border), `level_endplates` (each level's lines),
`wedges` (a body's two plates against each other), `lumbosacral` (S1's plate against L5's),
`femoral_heads`, `anterior` (which side is anterior), `rectify`
(photo → radiograph correction, from the photo's straight lines `photo_lines` and a pinhole
`camera`), `frame_angles` (image-frame endplates → measuring frame →
angles: the pipeline's last step, shared with the page's corrections), `pipeline`
(`measure_instances`, `Measurement`, `measurement_row`), `reads` (the angles checked against, and PT
averaged over, the photo's and its mirror image's reads, each measured alone), `overlay`
(`draw_overlay`), `dataset` (ground-truth shapes of a Labelme folder), `preannotation` (a
Measurement as a Labelme JSON).

A prediction loop is: ``insts = instances_from_predictions(outputs["instances"], class_names)``;
``m = measure_instances(insts, image.shape[:2], class_names, cfg.measure, image=image)``;
``measurement_row(stem, m)`` and ``draw_overlay(image, m)``.
"""
from spine_d2.measure.instances import (Instance, instances_from_predictions, instances_from_record, lazy_instances,
                                       lazy_run)
from spine_d2.measure.overlay import draw_overlay
from spine_d2.measure.pipeline import CSV_COLUMNS, MeasureConfig, Measurement, measure_instances, measurement_row

__all__ = ["Instance", "instances_from_predictions", "instances_from_record", "lazy_instances", "lazy_run",
           "draw_overlay",
           "CSV_COLUMNS", "MeasureConfig", "Measurement", "measure_instances", "measurement_row"]
