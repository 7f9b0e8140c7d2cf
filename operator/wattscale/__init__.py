"""wattscale: an operator serving LLMs with vLLM at the least energy cost the SLO allows."""

__version__ = "0.1.0"
