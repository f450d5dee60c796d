"""Log lines as JSON objects (LOG_FORMAT=json, production's default), one per line, and the
request context that every line logged during a request carries.

A small formatter rather than a dependency: a line is the record's level, logger, message,
time and process, plus whatever the caller passed in ``extra=`` (the access log passes the
request's fields that way), plus the request id of the request being served.
"""

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest

# The id of the request being served (the `request-id` header), set by
# chatapi.middleware.access_log_middleware for the time the request runs.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)

# Every LogRecord has these; any other attribute came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class RequestContextFilter(logging.Filter):
    """Tags each record with the id of the request being served, if any (on a handler, so
    it applies to every logger's records)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


def _loggable(value: Any) -> Any:
    """An extra field as it may be logged. Django's loggers pass the request itself, whose
    repr has the query string, and a query string can carry a key or a token
    (``?apikey=...``): a request is logged as its method and path only."""
    if isinstance(value, HttpRequest):
        return f"{value.method} {value.path}"
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, ``process``, the record's extra fields (None ones left out), and
    ``exception`` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_") and value is not None:
                entry[key] = _loggable(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":"))
