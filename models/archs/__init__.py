"""Networks and their building blocks, one per file, named as in their papers."""
