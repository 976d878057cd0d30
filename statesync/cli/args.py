"""Argument types shared by the CLI's commands."""

from __future__ import annotations

import argparse

__all__ = ["revision"]


def revision(text: str) -> int:
    try:
        rev = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a revision is an integer >= 0, got {text!r}") from None
    if rev < 0:
        raise argparse.ArgumentTypeError(f"a revision is an integer >= 0, got {text!r}")
    return rev
