"""`statesync worker` and `statesync replica dump` (the worker side of the CLI)."""

from __future__ import annotations

import argparse

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the worker-side commands (filled in with the worker SDK)."""
