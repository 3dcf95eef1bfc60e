"""spine_d2: spinal sagittal alignment from photos and screenshots of X-rays, on Detectron2."""

__version__ = "0.1.0"
