"""Logs: one JSON object a line on standard output, the server's lines included,
each with the id of the request it belongs to (`request_id`, also sent back in
the `X-Request-ID` response header; null outside requests).

Nothing here logs headers, bodies or tokens; SQL statements are logged
without their parameters (`db.py`), so no session id or other secret
reaches a log line.
"""

import logging
import sys

from asgi_correlation_id import CorrelationIdFilter
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(correlation_id)s %(message)s"
# uvicorn's (`uvicorn {package}.main:app`) and Granian's (`python -m {package}`).
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "_granian", "granian.access")
RENAMED = {
    "asctime": "time",
    "levelname": "level",
    "name": "logger",
    "correlation_id": "request_id",
}


def configure_logging(level: str) -> None:
    """Send every record to one JSON handler on the root logger."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(CorrelationIdFilter())
    # uvicorn's `color_message` (its message again, with terminal colours) is left out.
    formatter = JsonFormatter(
        FIELDS, rename_fields=RENAMED, reserved_attrs=[*RESERVED_ATTRS, "color_message"]
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # The servers' own text handlers give way to the root's, and their loggers
    # to LOG_LEVEL (they set their own, INFO, whatever the root's). A logger
    # without handlers stays bare: `--no-access-log` leaves `uvicorn.access` so.
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if logger.handlers:
            logger.handlers.clear()
            logger.propagate = True
