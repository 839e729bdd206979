"""The logic of the network stages of ``dvc.yaml`` (training, evaluation), one module per stage."""
