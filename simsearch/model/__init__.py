"""Model stage: the beat encoder (beats in, unit vectors out), its datasets and its training loop."""
