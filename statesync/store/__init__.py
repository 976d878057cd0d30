"""Storage backends behind the `Store` Protocol: sqlite (embedded default)."""
