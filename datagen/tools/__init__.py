"""Command-line tools for users (inspecting shards, mask statistics); never imported by stages."""
