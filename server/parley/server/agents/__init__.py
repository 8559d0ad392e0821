"""Agent backends: the `Agent` protocol, one module per kind, and the profile registry."""
