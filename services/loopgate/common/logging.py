"""One logging setup for every service: a timestamped line per record on stderr."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # aiokafka is chatty about coordinator changes that it recovers from by itself.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
