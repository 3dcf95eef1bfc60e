"""spine_d2.synthetic."""
