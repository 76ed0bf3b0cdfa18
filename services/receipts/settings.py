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
    apply_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description="report requests applied at once; the others wait for a turn",
    )
    apply_wait_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="how long a report request waits for its turn before it is answered 503"
        " with Retry-After (the provider sends it again later)",
    )
    not_ready_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="times the reports ahead of their receipts are applied again, after"
        " waiting not_ready_wait_s each time, before the request is answered 503",
    )
    not_ready_wait_s: float = Field(0.5, gt=0, le=10)
