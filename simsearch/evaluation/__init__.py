"""Evaluation: metrics, beat matching and every protocol (classification, detection,
adaptive, end to end, model selection). It imports every stage; no stage imports it."""
