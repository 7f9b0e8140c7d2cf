"""Measured truth: vLLM and DCGM readings through Prometheus, capacity and power learning."""
