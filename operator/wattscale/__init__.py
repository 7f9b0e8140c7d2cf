"""wattscale: a Kubernetes operator that serves LLMs with vLLM at the lowest energy cost the SLO allows."""

__version__ = "0.1.0"
