from __future__ import annotations

from pydantic import Field

from alimi.settings import PhoneKeySettings


class IntakeSettings(PhoneKeySettings):
    http_host: str = "0.0.0.0"
    http_port: int = Field(8080, ge=0, le=65535)
    public_base_url: str = Field(
        "http://127.0.0.1:8080", description="base of the status-page links in messages"
    )
    outbox_poll_s: float = Field(1.0, gt=0, le=60)
    max_body_mb: int = Field(32, ge=1, le=1024)
    # Streamed uploads (subject imports, lists) are not held in memory: their own, larger cap.
    import_max_mb: int = Field(
        512, ge=1, le=65536, description="body limit of POST /v1/subjects/import and /v1/lists"
    )
    idempotency_ttl_h: float = Field(24.0, gt=0, le=24 * 30, description="Idempotency-Key memory")
    contact_retention_days: int = Field(
        365,
        ge=1,
        le=36500,
        description="days after an incident opened before its people's contact data may be purged",
    )
    job_lease_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="how long a job stays running after its process stops renewing it",
    )
