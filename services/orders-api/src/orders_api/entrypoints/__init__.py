"""How the outside calls in: the HTTP API."""
