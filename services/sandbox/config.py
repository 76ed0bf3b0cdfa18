"""Sandbox configuration read from ``SANDBOX_*`` environment variables."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .behaviour import Behaviour, InvalidSetting
from .kakao_simulator import BUILT_IN_TEMPLATES, Template

T = TypeVar("T")

# Behaviour field -> environment variable, so range errors name the variable.
_BEHAVIOUR_VARIABLES = {
    "latency_ms": "SANDBOX_LATENCY_MS",
    "latency_jitter_ms": "SANDBOX_LATENCY_JITTER_MS",
    "error_rate": "SANDBOX_ERROR_RATE",
    "rate_limit_rate": "SANDBOX_RATE_LIMIT_RATE",
    "retry_after_s": "SANDBOX_RETRY_AFTER_S",
    "timeout_rate": "SANDBOX_TIMEOUT_RATE",
    "hang_ms": "SANDBOX_HANG_MS",
    "sms_undelivered_suffixes": "SANDBOX_SMS_UNDELIVERED_SUFFIXES",
    "kakao_not_user_suffixes": "SANDBOX_KAKAO_NOT_USER_SUFFIXES",
    "kakao_uncertain_suffixes": "SANDBOX_KAKAO_UNCERTAIN_SUFFIXES",
    "kakao_undelivered_suffixes": "SANDBOX_KAKAO_UNDELIVERED_SUFFIXES",
    "kakao_volume_limit": "SANDBOX_KAKAO_VOLUME_LIMIT",
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
    # Kakao AlimTalk: appkey and secret default to the SMS ones when None.
    kakao_app_key: str | None = None
    kakao_secret_key: str | None = None
    kakao_sender_key: str = "sandbox-sender-key"
    kakao_templates: Mapping[str, Template] = field(default_factory=lambda: BUILT_IN_TEMPLATES)
    slack_token: str = "xoxb-sandbox-token"
    # Delivery reports: no reports for a channel whose URL is None.
    sms_report_url: str | None = None
    kakao_report_url: str | None = None
    report_secret: str = "sandbox-report-secret"
    report_delay_ms: float = 200.0
    report_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 60.0, 60.0)
    # How long one report POST may take before it is sent again. Applying 1,000
    # reports on a slow store takes seconds; too short a timeout makes the same
    # reports arrive again while the first copy is still being applied.
    report_timeout_s: float = 30.0
    # Pending reports held in memory per channel; the rest wait in a spool file.
    report_max_in_memory: int = 100_000

    @property
    def kakao_app_key_or_default(self) -> str:
        return self.app_key if self.kakao_app_key is None else self.kakao_app_key

    @property
    def kakao_secret_key_or_default(self) -> str:
        return self.secret_key if self.kakao_secret_key is None else self.kakao_secret_key

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SandboxConfig:
        """Build a config from ``env``; unset or empty variables take their defaults."""
        defaults = cls()
        reader = _EnvReader(env)
        parsers: dict[str, Callable[[str], Any]] = {
            "kakao_volume_limit": _integer,
            "latency_ms": _number,
            "latency_jitter_ms": _number,
            "error_rate": _number,
            "rate_limit_rate": _number,
            "retry_after_s": _integer,
            "timeout_rate": _number,
            "hang_ms": _number,
        }
        behaviour_values = {
            name: reader.get(variable, parsers.get(name, str), getattr(defaults.behaviour, name))
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
            kakao_app_key=reader.get("SANDBOX_KAKAO_APP_KEY", str, None),
            kakao_secret_key=reader.get("SANDBOX_KAKAO_SECRET_KEY", str, None),
            kakao_sender_key=reader.get("SANDBOX_KAKAO_SENDER_KEY", str, defaults.kakao_sender_key),
            kakao_templates=reader.get(
                "SANDBOX_KAKAO_TEMPLATES_FILE", _templates_file, defaults.kakao_templates
            ),
            slack_token=reader.get("SANDBOX_SLACK_TOKEN", str, defaults.slack_token),
            sms_report_url=reader.get("SANDBOX_SMS_REPORT_URL", _url, None),
            kakao_report_url=reader.get("SANDBOX_KAKAO_REPORT_URL", _url, None),
            report_secret=reader.get("SANDBOX_REPORT_SECRET", str, defaults.report_secret),
            report_delay_ms=reader.get(
                "SANDBOX_REPORT_DELAY_MS", _delay_ms, defaults.report_delay_ms
            ),
            report_timeout_s=reader.get(
                "SANDBOX_REPORT_TIMEOUT_S", _timeout_s, defaults.report_timeout_s
            ),
            report_max_in_memory=reader.get(
                "SANDBOX_REPORTS_IN_MEMORY", _positive_integer, defaults.report_max_in_memory
            ),
        )


def _positive_integer(raw: str) -> int:
    value = _integer(raw)
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


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


def _timeout_s(raw: str) -> float:
    value = _number(raw)
    if not 0 < value <= 600:  # also rejects nan and inf
        raise ValueError("must be a number of seconds above 0 and at most 600")
    return value


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


def _delay_ms(raw: str) -> float:
    value = _number(raw)
    if not 0 <= value <= 3_600_000:  # also rejects nan and inf
        raise ValueError("must be a number of milliseconds between 0 and 3600000")
    return value


def _templates_file(path: str) -> Mapping[str, Template]:
    """Read ``{code: {"content": ..., "buttons": n}}`` from a JSON file; ValueError if unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot be read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"is not valid JSON: {error}") from None
    if not isinstance(value, dict) or not value:
        raise ValueError("must hold a JSON object of at least one template")
    templates: dict[str, Template] = {}
    for code, template in value.items():
        try:
            templates[code] = Template.from_json(template)
        except ValueError as error:
            raise ValueError(f"template {code}: {error}") from None
    return MappingProxyType(templates)


def _url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return raw
