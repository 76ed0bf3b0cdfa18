from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from alimi import topology
from alimi.settings import BaseSettings


class DeliverySettings(BaseSettings):
    ops_port: int = Field(9102, ge=0, le=65535)
    prefetch: int = Field(8, ge=1, le=500, description="batches in flight per process")
    drain_grace_s: float = Field(20.0, ge=0, le=600)
    provider_timeout_s: float = Field(10.0, gt=0, le=120)
    # Retries: one delay per step of the retry queues, then the dead-letter queue.
    retry_delays_s: str = Field("5,30,300", description="comma-separated, one per step")
    retry_jitter: float = Field(0.2, ge=0, lt=1, description="each delay varies by this share")
    # A claim older than this belongs to a worker that died: the provider is asked, then
    # the person is sent to if it has nothing. Must outlast any provider call.
    claim_lease_s: float = Field(60.0, gt=0, le=3600)
    # How often a worker writes its heartbeat. A claim naming a worker whose heartbeat has
    # run out (the provider timeout plus two beats and a second) is settled at once.
    heartbeat_s: float = Field(2.0, gt=0, le=60)
    # Per-process rate limits of each provider account (0: none). With n replicas,
    # give each 1/n of the account's limit.
    sms_requests_per_s: float = Field(0.0, ge=0)
    sms_recipients_per_s: float = Field(0.0, ge=0)
    kakao_requests_per_s: float = Field(0.0, ge=0)
    kakao_recipients_per_s: float = Field(0.0, ge=0)
    # Circuit breaker per provider: open after this many failed calls in a row.
    breaker_failures: int = Field(5, ge=1, le=1000)
    breaker_cooldown_s: float = Field(30.0, gt=0, le=3600)
    # SMS / LMS gateway (NHN Cloud SMS v3.0 shape)
    sms_api_url: str = "http://127.0.0.1:8090"
    sms_app_key: str = Field("sandbox-app-key", min_length=1)
    sms_secret_key: SecretStr = Field(SecretStr("sandbox-secret"), min_length=1)
    sms_sender_no: str = Field("0215990000", pattern=r"^\d{8,12}$")
    # Kakao AlimTalk (NHN Cloud Bizmessage AlimTalk v2.3 shape)
    kakao_api_url: str = "http://127.0.0.1:8090"
    kakao_app_key: str = Field("sandbox-app-key", min_length=1)
    kakao_secret_key: SecretStr = Field(SecretStr("sandbox-secret"), min_length=1)
    kakao_sender_key: SecretStr = Field(SecretStr("sandbox-sender-key"), min_length=1)
    # Slack Web API, for staff
    slack_api_url: str = "http://127.0.0.1:8090/slack/api/"
    slack_token: SecretStr = Field(SecretStr("xoxb-sandbox-token"), min_length=1)
    slack_default_channel: str = Field("#incident-response", min_length=1, max_length=80)
    slack_max_rate_limit_retries: int = Field(5, ge=0, le=20)

    @field_validator("retry_delays_s")
    @classmethod
    def _one_delay_per_step(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",")]
        except ValueError:
            raise ValueError("must be numbers separated by commas, e.g. 5,30,300") from None
        if len(delays) != topology.RETRY_STEPS or any(not 0 < d <= 86400 for d in delays):
            raise ValueError(
                f"must be {topology.RETRY_STEPS} delays in seconds, each in (0, 86400]"
            )
        return value

    @property
    def retry_delays(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.retry_delays_s.split(","))

    @model_validator(mode="after")
    def _lease_outlasts_a_call(self) -> DeliverySettings:
        if self.claim_lease_s < 2 * self.provider_timeout_s:
            raise ValueError(
                "ALIMI_CLAIM_LEASE_S must be at least twice ALIMI_PROVIDER_TIMEOUT_S, "
                "or a live worker's claim could be taken over"
            )
        return self
