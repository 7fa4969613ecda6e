"""Cold-start wiring shared by the handlers: settings read once, tables bound once."""
from __future__ import annotations

import threading

from dripline import actions
from dripline.settings import Settings
from dripline.storage import models

_settings: Settings | None = None
_lock = threading.Lock()


def settings() -> Settings:
    """The process's settings: read from the environment on first use, then kept."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings.from_env()
            _apply(_settings)
        return _settings


def configure(current: Settings) -> None:
    """Use `current` instead of the environment (tests, the local stack)."""
    global _settings
    with _lock:
        _settings = current
        _apply(current)


def reset() -> None:
    """Forget the settings; the next handler call reads the environment again."""
    global _settings
    with _lock:
        _settings = None


def _apply(current: Settings) -> None:
    models.bind(current)
    actions.load_custom_actions(current.action_modules)
