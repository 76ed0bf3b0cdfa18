from __future__ import annotations

from pydantic import Field, SecretStr

from alimi.settings import BaseSettings


class DeliverySettings(BaseSettings):
    ops_port: int = Field(9102, ge=0, le=65535)
    prefetch: int = Field(8, ge=1, le=500, description="batches in flight per process")
    drain_grace_s: float = Field(20.0, ge=0, le=600)
    provider_timeout_s: float = Field(10.0, gt=0, le=120)
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
