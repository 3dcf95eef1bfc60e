"""spine_d2.data."""
