from __future__ import annotations

from pydantic import Field

from alimi.settings import PhoneKeySettings


class SegmenterSettings(PhoneKeySettings):
    ops_port: int = Field(9101, ge=0, le=65535)
    batch_size: int = Field(100, ge=1, le=1000)
    prefetch: int = Field(2, ge=1, le=100, description="partitions segmented at once")
    partition_people: int = Field(
        50_000, ge=1, description="an approved notice gets one partition per this many people"
    )
    max_partitions: int = Field(256, ge=1, le=4096)
    partition_lease_s: float = Field(
        30.0,
        ge=2,
        le=3600,
        description="a partition whose owner stopped renewing this long is taken over",
    )
    progress_interval_s: float = Field(1.0, gt=0, le=60)
    monitor_interval_s: float = Field(5.0, gt=0, le=300, description="gauges of notices, queues")
    drain_grace_s: float = Field(20.0, ge=0, le=600)
    reports_every_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="a completed notice's summary follows its reports this often",
    )
    reports_cutoff_s: float = Field(
        3600.0, gt=0, description="after this long since completion the staff summary is final"
    )
