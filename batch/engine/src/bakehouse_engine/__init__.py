"""Bakehouse engine: stim, rollout and bake jobs (DESIGN.md §5)."""
