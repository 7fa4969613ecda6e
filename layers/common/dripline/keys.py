"""Signing keys, read at runtime from AWS Secrets Manager with Powertools Parameters.

The template hands each function the secret's ARN, never its value (a value in the
environment is readable by anyone allowed `lambda:GetFunctionConfiguration`). Values are
cached for MAX_AGE_SECONDS per process, so a rotated key is picked up within minutes and a
warm function makes no call per request. Fail closed: no secret id, an unreadable secret
or a short one raises SecretUnavailable, and nothing is signed or accepted.
"""
from __future__ import annotations

import threading
from functools import lru_cache

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

MAX_AGE_SECONDS = 300
MIN_KEY_LENGTH = 32


# The processor's worker threads all miss a cold cache at once: one of them reads the
# secret, the others wait for its value instead of each calling Secrets Manager.
_reading = threading.Lock()


class SecretUnavailable(RuntimeError):
    """A signing key is not configured or cannot be read."""


@lru_cache(maxsize=8)
def _provider(region: str, endpoint_url: str | None) -> SecretsProvider:
    client = boto3.session.Session().client("secretsmanager", region_name=region, endpoint_url=endpoint_url)
    return SecretsProvider(boto3_client=client)


def signing_key(secret_id: str, setting: str, *, region: str, endpoint_url: str | None = None) -> str:
    """The secret string named by `secret_id` (an ARN or a name); `setting` names the
    environment variable in errors."""
    if not secret_id:
        raise SecretUnavailable(f"{setting} is not set")
    try:
        with _reading:
            value = _provider(region, endpoint_url).get(secret_id, max_age=MAX_AGE_SECONDS)
    except GetParameterError as exc:
        raise SecretUnavailable(f"the secret named by {setting} cannot be read") from exc
    if not isinstance(value, str) or len(value) < MIN_KEY_LENGTH:
        raise SecretUnavailable(f"the secret named by {setting} is shorter than {MIN_KEY_LENGTH} characters")
    return value


def forget() -> None:
    """Drop the clients and cached values (tests: a fresh emulator has fresh secrets)."""
    _provider.cache_clear()
