"""From a validated spec to a graph with shapes (resolve) and to torch (lower)."""
