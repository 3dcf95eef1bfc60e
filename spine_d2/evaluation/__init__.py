"""spine_d2.evaluation."""
