"""facepairs' torch side: networks, losses, training and evaluation, shared by RaIN and the
hallucination networks."""
