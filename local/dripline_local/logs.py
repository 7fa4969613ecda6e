"""Two kinds of output for the local stack.

- Human lines on stderr: one per request, enrollment batch and tick.
- The handlers' own output (Powertools JSON logs and EMF metrics, exactly what Lambda
  would get) goes wherever the user asks: a file by default, stdout, or nowhere. The
  handlers print to sys.stdout from worker threads, so stdout is routed by thread: the
  main thread (banner, curl lines, demo tables) keeps the terminal.
"""
from __future__ import annotations

import io
import logging
import sys
import threading
import warnings
from typing import IO

HUMAN_LOGGER = "dripline_local"


def human_logger(stream: IO[str] | None = None, *, quiet: bool = False) -> logging.Logger:
    logger = logging.getLogger(HUMAN_LOGGER)
    logger.handlers.clear()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s  %(message)s", datefmt="%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    return logger


class ThreadRoutedStream(io.TextIOBase):
    """A stand-in for sys.stdout: the main thread writes to `main`, others to `other`."""

    def __init__(self, main: IO[str], other: IO[str] | None) -> None:
        self.main = main
        self.other = other
        self._main_thread = threading.main_thread()
        self._lock = threading.Lock()

    def _target(self) -> IO[str] | None:
        return self.main if threading.current_thread() is self._main_thread else self.other

    def write(self, text: str) -> int:
        target = self._target()
        if target is None:
            return len(text)
        if target is self.main:
            return target.write(text)
        with self._lock:  # whole lines from concurrent handlers
            written = target.write(text)
            target.flush()
            return written

    def flush(self) -> None:
        for stream in (self.main, self.other):
            if stream is not None:
                stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.main.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.main, "encoding", "utf-8")

    def fileno(self) -> int:
        return self.main.fileno()


def route_lambda_output(sink: IO[str] | None) -> ThreadRoutedStream:
    """Install the router as sys.stdout (before the handlers' loggers are created) and
    point any stdout log handler created earlier at it too."""
    original = sys.stdout
    if isinstance(original, ThreadRoutedStream):
        original.other = sink
        return original
    router = ThreadRoutedStream(original, sink)
    sys.stdout = router
    for logger in [logging.getLogger()] + [l for l in logging.Logger.manager.loggerDict.values() if isinstance(l, logging.Logger)]:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is original:
                handler.setStream(router)
    return router


def quiet_library_noise() -> None:
    # Powertools warns on every invocation that emitted no metrics; moto's werkzeug logs
    # every emulator request.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
