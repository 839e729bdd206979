"""The logic of each data stage, one module per DVC stage, named as in ``dvc.yaml``."""
