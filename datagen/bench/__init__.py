"""Benchmarks (``python -m datagen.bench.<name>``); never imported by stages."""
