"""3-D face operations: Surrey Face Model fitting, the renderer, head turning, relighting."""
