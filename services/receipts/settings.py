from __future__ import annotations

from pydantic import Field, SecretStr

from alimi.settings import BaseSettings


class ReceiptsSettings(BaseSettings):
    http_host: str = "0.0.0.0"
    http_port: int = Field(8081, ge=0, le=65535)
    ops_port: int = Field(9103, ge=0, le=65535, description="/metrics, /healthz, /readyz")
    report_secret: SecretStr = Field(
        SecretStr("sandbox-report-secret"),
        min_length=16,
        description="HMAC-SHA256 key shared with the providers that send delivery reports",
    )
    report_max_skew_s: int = Field(
        300, ge=1, le=3600, description="how far a report's timestamp may be from our clock"
    )
    max_body_mb: int = Field(4, ge=1, le=64)
    apply_workers: int = Field(
        2, ge=1, le=32, description="inbox documents applied at once by this process"
    )
    apply_after_s: float = Field(
        0.2,
        ge=0,
        le=60,
        description="a report is first applied this long after it arrives: delivery records"
        " its attempt right after the provider's answer, which may report first",
    )
    apply_lease_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="how long an applier owns an inbox document before another may take it",
    )
    report_max_wait_s: float = Field(
        86400.0,
        gt=0,
        description="how long a report waits for its receipt to catch up before it is given up",
    )
