"""Thin DVC stage entry points: ``python -m pipelines.<stage>`` for each stage of dvc.yaml."""
