"""moakg: knowledge-graph learning of drug mechanism of action and targets from L1000 signatures."""

__version__ = "0.1.0"
