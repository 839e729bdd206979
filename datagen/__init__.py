"""facepairs' data side: photos -> aligned faces -> paired degraded/clean faces, as shards."""
