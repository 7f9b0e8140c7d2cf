"""Test doubles: local HTTP servers in providers' real payload formats, and the shared data."""
