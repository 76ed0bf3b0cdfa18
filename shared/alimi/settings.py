"""Service settings read once from the environment.

Each service declares one pydantic model of its settings; :func:`load` fills it
from ``ALIMI_*`` environment variables (field ``amqp_url`` <- ``ALIMI_AMQP_URL``)
and turns every missing or invalid value into one :class:`SettingsError` that
names the variables, so a service stops at start-up with a message an operator
can act on instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from alimi import crypto
from alimi.poison import BROKER_DELIVERY_LIMIT

ENV_PREFIX = "ALIMI_"

S = TypeVar("S", bound="BaseSettings")


class SettingsError(Exception):
    """One or more environment variables are missing or invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


class BaseSettings(BaseModel):
    """Settings every service shares."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = Field(
        "alimi",
        pattern=r"^[a-z][a-z0-9_.-]{0,40}$",
        description="prefix of every queue, exchange and collection name",
    )
    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="the broker's URL, or its cluster nodes' URLs separated by commas "
        "(connected to in turn, failing over to the next: shared/alimi/broker.py)",
    )
    mongo_url: SecretStr = SecretStr("mongodb://127.0.0.1:27017/")
    mongo_db: str = Field("alimi", pattern=r"^[A-Za-z0-9_-]{1,60}$")
    ops_host: str = "0.0.0.0"
    ops_port: int = Field(9100, ge=0, le=65535, description="/metrics, /healthz, /readyz")
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    quorum_queues: bool = Field(
        False,
        description="declare replicated quorum queues, not classic ones; every service of a "
        "namespace must agree, and an existing namespace keeps the type it was created with",
    )
    # Every wait on a dependency is bounded (and named in the error when it runs out).
    mongo_timeout_ms: int = Field(
        10_000,
        ge=100,
        le=600_000,
        description="PyMongo's timeoutMS: the longest any one database operation may take",
    )
    amqp_timeout_s: float = Field(
        30.0, gt=0, le=300, description="the longest a publish waits for the broker's confirm"
    )
    delivery_limit: int = Field(
        10,
        ge=1,
        lt=BROKER_DELIVERY_LIMIT,
        description="failures after which a consumed message goes to its dead-letter queue",
    )
    shutdown_timeout_s: float = Field(
        10.0,
        ge=0,
        le=60,
        description="on SIGTERM, how long an HTTP server (API, ops) lets requests in flight "
        "finish; with the rest of shutdown it must end inside the Kubernetes grace period",
    )
    phone_hash_key: SecretStr = Field(
        SecretStr("alimi-development-only-phone-hash-key"),
        min_length=16,
        description="key of the keyed hash used to dedupe and look up phone numbers",
    )

    @field_validator("amqp_url")
    @classmethod
    def _broker_urls(cls, value: SecretStr) -> SecretStr:
        urls = [u.strip() for u in value.get_secret_value().split(",") if u.strip()]
        if not urls:
            raise ValueError("no broker URL given")
        for position, url in enumerate(urls, 1):
            if not url.startswith(("amqp://", "amqps://")):
                # the URL holds the password: say which one is wrong, never what it is
                raise ValueError(f"URL {position} of {len(urls)} is not an amqp:// or amqps:// URL")
        return value

    def startup_warnings(self) -> list[str]:
        """Things an operator should know about this configuration, logged at start-up."""
        return []


class PhoneKeySettings(BaseSettings):
    """Settings of the services that encrypt (intake) or decrypt (segmenter) phone numbers.

    The other services never see a phone key, so they do not declare one.
    """

    phone_keys: SecretStr = Field(
        SecretStr(crypto.DEVELOPMENT_KEYS),
        description="AES-256-GCM keys of phone numbers at rest: 'id:base64,...', first encrypts",
    )

    @field_validator("phone_keys")
    @classmethod
    def _parseable(cls, value: SecretStr) -> SecretStr:
        try:
            crypto.keyring(value.get_secret_value())
        except crypto.KeyringError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def phone_keyring(self) -> crypto.Keyring:
        return crypto.keyring(self.phone_keys.get_secret_value())

    def startup_warnings(self) -> list[str]:
        warnings = super().startup_warnings()
        if self.phone_keyring.development:
            warnings.append(
                f"{env_name('phone_keys')} holds the public development key: phone numbers at "
                "rest are not protected; set your own keys outside development"
            )
        return warnings


def load(model: type[S], environ: Mapping[str, str]) -> S:
    """Build ``model`` from ``ALIMI_*`` variables in ``environ``."""
    values = {
        name: environ[env_name(name)] for name in model.model_fields if env_name(name) in environ
    }
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if err["loc"]:
                problems.append(f"{env_name(str(err['loc'][0]))}: {err['msg']}")
            else:  # a rule across settings: its message names them
                problems.append(err["msg"].removeprefix("Value error, "))
        raise SettingsError(problems) from None
