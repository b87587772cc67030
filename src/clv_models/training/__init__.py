"""Orchestrators: the only modules that run several steps (features → models → evaluation → tracking)."""
