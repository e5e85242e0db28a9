"""The use cases (create, read) and the ports they need; the adapters implement the ports."""
