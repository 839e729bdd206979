"""2-D face operations: detection and landmarks, alignment, the degrade step, occlusion masks."""
