"""Task datasets over the pair shards: tensors in [-1, 1], landmarks, heatmaps, augmentation."""
