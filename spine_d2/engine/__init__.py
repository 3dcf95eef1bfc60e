"""spine_d2.engine."""
