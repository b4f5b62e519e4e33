"""Bakehouse engine: stim, rollout and bake jobs, and the chat sampler (DESIGN.md §5)."""
