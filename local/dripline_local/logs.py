"""Two kinds of output for the local stack.

- Human lines on stderr: one per request, enrollment batch and tick.
- The handlers' own output (Powertools JSON logs and EMF metrics, exactly what Lambda
  would get) goes wherever the user asks: a file of this stack's own by default (appended
  to, never truncated), stdout, or nowhere. The handlers print to sys.stdout from worker
  threads, so stdout is routed by thread: the main thread (banner, curl lines, demo
  tables) keeps the terminal.

The handlers share this process and one Powertools logger, whose Lambda-context keys
are those of whichever invocation set them last. So each JSON line a handler's thread
writes is relabelled with that thread's own invocation (`function_name`, `function_arn`,
`function_request_id`, `function_memory_size`, `service`): every line names the handler
that wrote it. Lines from threads a handler starts itself keep Powertools' labels.
"""
from __future__ import annotations

import io
import json
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

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


def default_lambda_log_path() -> str:
    """This stack's own file: one process is one stack."""
    return os.path.join(tempfile.gettempdir(), f"dripline-local-{os.getpid()}-lambda.log")


_invocation = threading.local()


@contextmanager
def labelled(context: Any, service: str) -> Iterator[None]:
    """While a handler runs on this thread, its output lines carry its own labels."""
    previous = getattr(_invocation, "labels", None)
    _invocation.labels = {
        "function_name": context.function_name,
        "function_memory_size": context.memory_limit_in_mb,
        "function_arn": context.invoked_function_arn,
        "function_request_id": context.aws_request_id,
        "service": service,
    }
    try:
        yield
    finally:
        _invocation.labels = previous


def relabel(line: str, labels: dict[str, Any] | None) -> str:
    """A handler's JSON log line with its own invocation's labels (an EMF metrics line
    gains function_name); anything else unchanged."""
    if not labels or not line.startswith("{"):
        return line
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    if "_aws" in record:  # EMF: service is a metric dimension, left as emitted
        record["function_name"] = labels["function_name"]
    else:
        record.update(labels)
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)


class ThreadRoutedStream(io.TextIOBase):
    """A stand-in for sys.stdout: the main thread writes to `main`, others to `other`
    (whole lines, relabelled with the writing thread's invocation)."""

    def __init__(self, main: IO[str], other: IO[str] | None) -> None:
        self.main = main
        self.other = other
        self._main_thread = threading.main_thread()
        self._lock = threading.Lock()
        self._pending = threading.local()  # a thread's text up to its next newline

    def _target(self) -> IO[str] | None:
        return self.main if threading.current_thread() is self._main_thread else self.other

    def write(self, text: str) -> int:
        target = self._target()
        if target is None:
            return len(text)
        if target is self.main:
            return target.write(text)
        # print() writes a line and its newline separately: gather whole lines first.
        pending = getattr(self._pending, "text", "") + text
        *lines, self._pending.text = pending.split("\n")
        if lines:
            labels = getattr(_invocation, "labels", None)
            out = "".join(relabel(line, labels) + "\n" for line in lines)
            with self._lock:  # whole lines from concurrent handlers
                target.write(out)
                target.flush()
        return len(text)

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
