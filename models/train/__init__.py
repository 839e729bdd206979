"""What every training loop shares: device choice, checkpoints, the optimiser step, logging."""
