"""Entry-point wrapper shared by the stage scripts."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from embedforge.core.errors import EmbedforgeError


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); turn EmbedforgeError into one line on stderr and exit status 1."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        main()
    except EmbedforgeError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
