"""The service's stderr: one JSON object per line (its own request and error lines, uvicorn's records, warnings)."""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
import warnings

log = logging.getLogger("facecompare.server")


def json_log(level: int = logging.INFO, **fields) -> None:
    log.log(level, json.dumps({"ts": round(time.time(), 3), **fields}, separators=(",", ":")))


def exception_fields(exc: BaseException) -> dict:
    """Where an exception happened: its type and one ``file:line in function`` per frame. Not its message, nor
    the source lines' values: a bug's message may quote the request (an image's bytes, an object key)."""
    frames = [f"{frame.filename}:{frame.lineno} in {frame.name}"
              for frame in traceback.extract_tb(exc.__traceback__, limit=30)]
    return {"error_type": type(exc).__qualname__, "traceback": frames}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record, for uvicorn's records and any other library's: time, level, logger, the
    message cut to 300 characters, and an exception as :func:`exception_fields` (never a text traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
                  "message": record.getMessage()[:300]}
        if record.exc_info and record.exc_info[1] is not None:
            fields.update(exception_fields(record.exc_info[1]))
        return json.dumps(fields, separators=(",", ":"))


# uvicorn's logging (``uvicorn.run(log_config=...)``): its records on stderr as JSON lines like ours. Its access
# log is off (``facecompare serve`` runs at level warning): the service logs each request itself.
UVICORN_LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonLogFormatter}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "loggers": {"uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
                "uvicorn.error": {"level": "INFO"},
                "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}


def configure_logging() -> None:
    """The service's stderr: one JSON object per line. Its own lines (one per request, one per internal
    error) are JSON already; any other library's records go through :class:`JsonLogFormatter`; warnings are
    filtered or turned into JSON lines (:func:`capture_warnings`). Idempotent."""
    if not any(getattr(h, "_facecompare", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._facecompare = True
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    root = logging.getLogger()
    if not any(getattr(h, "_facecompare", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLogFormatter())
        handler._facecompare = True
        root.addHandler(handler)
    # python-multipart logs each malformed body it is fed (a warning) before it raises; that request is
    # answered with a 400 and logged by the service already.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    capture_warnings()


def capture_warnings() -> None:
    """Keep the warnings module off stderr, where it writes two plain-text lines per warning.

    Pillow's warnings about a client's image are dropped, not turned into errors, because each is about data
    that already gets its typed answer or is deliberately tolerated:

    * ``DecompressionBombWarning`` (a header over 89 MP): it is over FACECOMPARE_MAX_PIXELS (64 MP by
      default), so the header check right after refuses it with ImageTooLargeException; if an operator raised
      the limit that far, the image is allowed by choice. Over 179 MP Pillow raises DecompressionBombError,
      which is ImageTooLargeException as well.
    * EXIF warnings ("Possibly corrupt EXIF data", "Corrupt EXIF data", "Truncated File Read", "Tag data
      larger than file"): only the orientation tag is read, and unreadable EXIF counts as none
      (``images.decode_bytes``). A truncated or corrupt image itself is an exception, not a warning:
      InvalidImageFormatException.

    Any other warning becomes one JSON line (category, origin, message cut to 200 characters)."""
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    warnings.filterwarnings("ignore", module=r"PIL\.")
    warnings.showwarning = _warning_as_json


def _warning_as_json(message, category, filename, lineno, file=None, line=None) -> None:
    json_log(logging.WARNING, event="warning", category=getattr(category, "__name__", str(category)),
              origin=f"{filename}:{lineno}", message=str(message)[:200])


