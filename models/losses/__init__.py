"""Loss functions of the hallucination networks, one family per file, named as in their papers."""
