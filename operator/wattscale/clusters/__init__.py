"""Per-region Kubernetes clients, rendering of vLLM Deployments/Services, the /scale calls."""
