"""Per-region Kubernetes clients, rendering of vLLM Deployments/Services and the /scale subresource."""
