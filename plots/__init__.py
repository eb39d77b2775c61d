"""Pictures of the graph's data (``moakg plot``)."""
