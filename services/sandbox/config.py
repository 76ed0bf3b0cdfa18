"""Sandbox configuration read from ``SANDBOX_*`` environment variables."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from .behaviour import Behaviour, InvalidSetting

T = TypeVar("T")

# Behaviour field -> environment variable, so range errors name the variable.
_BEHAVIOUR_VARIABLES = {
    "latency_ms": "SANDBOX_LATENCY_MS",
    "latency_jitter_ms": "SANDBOX_LATENCY_JITTER_MS",
    "error_rate": "SANDBOX_ERROR_RATE",
}


class ConfigError(ValueError):
    """An environment variable holds an unusable value; the message names it."""


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 8090
    app_key: str = "sandbox-app-key"
    secret_key: str = "sandbox-secret"
    sender_numbers: frozenset[str] = frozenset({"0215990000"})
    behaviour: Behaviour = field(default_factory=Behaviour)
    seed: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SandboxConfig:
        """Build a config from ``env``; unset or empty variables take their defaults."""
        defaults = cls()
        reader = _EnvReader(env)
        behaviour_values = {
            name: reader.get(variable, _number, getattr(defaults.behaviour, name))
            for name, variable in _BEHAVIOUR_VARIABLES.items()
        }
        try:
            behaviour = Behaviour(**behaviour_values)
        except InvalidSetting as error:
            variable = _BEHAVIOUR_VARIABLES[error.field]
            raw = env.get(variable, "").strip()
            raise ConfigError(f"{variable} {error.reason} (got {raw!r})") from None
        return cls(
            host=reader.get("SANDBOX_HOST", str, defaults.host),
            port=reader.get("SANDBOX_PORT", _port, defaults.port),
            app_key=reader.get("SANDBOX_SMS_APP_KEY", str, defaults.app_key),
            secret_key=reader.get("SANDBOX_SMS_SECRET_KEY", str, defaults.secret_key),
            sender_numbers=reader.get(
                "SANDBOX_SMS_SENDER_NUMBERS", _sender_numbers, defaults.sender_numbers
            ),
            behaviour=behaviour,
            seed=reader.get("SANDBOX_SEED", _integer, None),
        )


class _EnvReader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(self, variable: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._env.get(variable, "").strip()
        if not raw:
            return default
        try:
            return parse(raw)
        except ValueError as error:
            raise ConfigError(f"{variable} {error} (got {raw!r})") from None


def _integer(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("must be an integer") from None


def _number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("must be a number") from None


def _port(raw: str) -> int:
    port = _integer(raw)
    if not 1 <= port <= 65535:
        raise ValueError("must be a port number between 1 and 65535")
    return port


def _sender_numbers(raw: str) -> frozenset[str]:
    numbers = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if not numbers:
        raise ValueError("must list at least one sender number")
    if not all(number.isascii() and number.isdigit() for number in numbers):
        raise ValueError("must be comma-separated phone numbers made of digits only")
    return numbers
