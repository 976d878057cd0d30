"""Argument types shared by the CLI's commands."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence

__all__ = ["DATA_HELP", "SERVER_HELP", "command", "revision"]

SERVER_HELP = "controller address HOST:PORT (default: $STATESYNC_SERVER, else 127.0.0.1:7700)"
DATA_HELP = "data directory (default: $STATESYNC_DATA, else ./statesync-data)"


def command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    description: str,
    examples: Sequence[str],
    *,
    server: bool = True,
    data: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand with a wrapped description (paragraphs kept), examples, and
    --server / --data accepted after the command as well as before it."""
    epilog = "examples:\n" + "".join(f"  {e}\n" for e in examples)
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description="\n\n".join(textwrap.fill(part, 79) for part in description.split("\n\n")),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # SUPPRESS: an option given before the command is kept when this one is absent.
    if server:
        p.add_argument("--server", metavar="HOST:PORT", default=argparse.SUPPRESS, help=SERVER_HELP)
    if data:
        p.add_argument("--data", metavar="DIR", default=argparse.SUPPRESS, help=DATA_HELP)
    return p


def revision(text: str) -> int:
    try:
        rev = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a revision is an integer >= 0, got {text!r}") from None
    if rev < 0:
        raise argparse.ArgumentTypeError(f"a revision is an integer >= 0, got {text!r}")
    return rev
