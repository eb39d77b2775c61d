"""Derived relationships: computed from what is already in the graph (``moakg derive``)."""
