"""Benchmarks of the networks (``python -m models.bench.<name>``); never imported by stages."""
