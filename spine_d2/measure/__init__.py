"""spine_d2.measure."""
