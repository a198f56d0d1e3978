"""Entry-point wrapper shared by the stage scripts."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from embedforge.core.errors import EmbedforgeError
from embedforge.core.files import output_set

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure_logging() -> None:
    """embedforge's INFO messages to stderr, other libraries' only from WARNING (once per process)."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("embedforge").setLevel(logging.INFO)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); turn EmbedforgeError into one line on stderr and exit status 1.

    Its outputs are one `output_set`: all replaced when main() returns, none when it fails.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    configure_logging()
    try:
        with output_set(Path(sys.argv[0]).stem or "stage"):
            main()
    except EmbedforgeError as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(1)
