"""Replay simulator, baseline policies and the offline optimum (oracle)."""
