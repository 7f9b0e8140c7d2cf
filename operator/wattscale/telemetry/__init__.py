"""The operator's own Prometheus metrics."""
