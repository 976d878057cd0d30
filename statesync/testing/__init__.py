"""Reusable test helpers, including the store conformance suite."""
