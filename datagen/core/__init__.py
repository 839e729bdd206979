"""What every stage shares: params, seeded generators, the shard format, image I/O, pairs columns."""
