"""Shared test cases: objects that both the unit tests and the e2e suite use."""
