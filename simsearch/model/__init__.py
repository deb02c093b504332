"""Model stage: the beat encoder (beats in, unit vectors out), a beat's vectors in one lead or both,
its datasets and its training loop."""
