"""Evaluation of the hallucination networks: the metrics of DESIGN.md's evaluation protocol."""
