"""Make the in-process moto server cheaper per request (the local stack's hot path).

moto's server finds each request's backend by listing moto's package directory, on
every request (a third of a DynamoDB call's server time here). The directory does not
change while the process runs, so list it once.
"""
from __future__ import annotations

from collections.abc import Iterable

from moto import backends

_original = backends.list_of_moto_modules


def cache_backend_lookup() -> None:
    """Idempotent."""
    if getattr(backends.list_of_moto_modules, "_dripline_cached", False):
        return
    modules = tuple(_original())

    def list_of_moto_modules() -> Iterable[str]:
        return iter(modules)

    list_of_moto_modules._dripline_cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment]
