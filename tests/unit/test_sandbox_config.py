"""Reading the sandbox configuration from SANDBOX_* environment variables."""

import json
from pathlib import Path

import pytest

from alimi.templates import kakao_templates
from alimi_sandbox.behaviour import Behaviour
from alimi_sandbox.config import ConfigError, SandboxConfig
from alimi_sandbox.kakao_simulator import BUILT_IN_TEMPLATES, Template

# The templates file compose and the k8s sandbox component give the sandbox.
DEPLOYED_TEMPLATES = (
    Path(__file__).resolve().parents[2] / "k8s/components/sandbox/kakao-templates.json"
)


def test_when_nothing_is_set__then_defaults_apply() -> None:
    config = SandboxConfig.from_env({})
    assert config == SandboxConfig(
        host="127.0.0.1",
        port=8090,
        app_key="sandbox-app-key",
        secret_key="sandbox-secret",
        sender_numbers=frozenset({"0215990000"}),
        behaviour=Behaviour(latency_ms=20, latency_jitter_ms=0, error_rate=0),
        seed=None,
    )


def test_when_everything_is_set__then_each_variable_is_used() -> None:
    config = SandboxConfig.from_env(
        {
            "SANDBOX_HOST": "0.0.0.0",
            "SANDBOX_PORT": "9000",
            "SANDBOX_SMS_APP_KEY": "key",
            "SANDBOX_SMS_SECRET_KEY": "secret",
            "SANDBOX_SMS_SENDER_NUMBERS": " 0215990000, 16440000 ,",
            "SANDBOX_LATENCY_MS": "0",
            "SANDBOX_LATENCY_JITTER_MS": "2.5",
            "SANDBOX_ERROR_RATE": "0.1",
            "SANDBOX_RATE_LIMIT_RATE": "0.2",
            "SANDBOX_RETRY_AFTER_S": "7",
            "SANDBOX_TIMEOUT_RATE": "0.05",
            "SANDBOX_HANG_MS": "1500",
            "SANDBOX_SEED": "42",
        }
    )
    assert config.host == "0.0.0.0"
    assert config.port == 9000
    assert (config.app_key, config.secret_key) == ("key", "secret")
    assert config.sender_numbers == {"0215990000", "16440000"}
    assert config.behaviour == Behaviour(
        latency_ms=0,
        latency_jitter_ms=2.5,
        error_rate=0.1,
        rate_limit_rate=0.2,
        retry_after_s=7,
        timeout_rate=0.05,
        hang_ms=1500,
    )
    assert config.seed == 42


def test_when_a_variable_is_empty__then_its_default_applies() -> None:
    assert SandboxConfig.from_env({"SANDBOX_PORT": "", "SANDBOX_SEED": " "}).port == 8090


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SANDBOX_PORT", "http"),
        ("SANDBOX_PORT", "70000"),
        ("SANDBOX_SMS_SENDER_NUMBERS", " , "),
        ("SANDBOX_SMS_SENDER_NUMBERS", "02-1599-0000"),
        ("SANDBOX_LATENCY_MS", "fast"),
        ("SANDBOX_LATENCY_MS", "-5"),
        ("SANDBOX_LATENCY_JITTER_MS", "inf"),
        ("SANDBOX_ERROR_RATE", "2"),
        ("SANDBOX_RATE_LIMIT_RATE", "often"),
        ("SANDBOX_RATE_LIMIT_RATE", "1.5"),
        ("SANDBOX_RETRY_AFTER_S", "2.5"),
        ("SANDBOX_RETRY_AFTER_S", "3601"),
        ("SANDBOX_TIMEOUT_RATE", "-0.1"),
        ("SANDBOX_HANG_MS", "nan"),
        ("SANDBOX_HANG_MS", "600001"),
        ("SANDBOX_SEED", "1.5"),
    ],
)
def test_when_a_value_is_invalid__then_the_error_names_the_variable(
    variable: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=variable):
        SandboxConfig.from_env({variable: value})


def test_when_provider_variables_are_set__then_kakao_slack_and_reports_use_them() -> None:
    config = SandboxConfig.from_env(
        {
            "SANDBOX_KAKAO_SENDER_KEY": "key",
            "SANDBOX_KAKAO_NOT_USER_SUFFIXES": "7000-9999",
            "SANDBOX_KAKAO_UNCERTAIN_SUFFIXES": "0000-0099",
            "SANDBOX_SMS_UNDELIVERED_SUFFIXES": "5000",
            "SANDBOX_KAKAO_VOLUME_LIMIT": "10",
            "SANDBOX_SLACK_TOKEN": "xoxb-1",
            "SANDBOX_SMS_REPORT_URL": "http://127.0.0.1:8081/v1/reports/sms",
            "SANDBOX_REPORT_SECRET": "s",
            "SANDBOX_REPORT_DELAY_MS": "0",
            "SANDBOX_REPORT_TIMEOUT_S": "2.5",
        }
    )
    assert config.kakao_sender_key == "key"
    assert "01012347000" in config.behaviour.kakao_not_user_suffixes
    assert str(config.behaviour.kakao_uncertain_suffixes) == "0000-0099"
    assert "01012345000" in config.behaviour.sms_undelivered_suffixes
    assert config.behaviour.kakao_volume_limit == 10
    assert config.slack_token == "xoxb-1"
    assert config.sms_report_url == "http://127.0.0.1:8081/v1/reports/sms"
    assert config.kakao_report_url is None
    assert (config.report_secret, config.report_delay_ms) == ("s", 0)
    assert config.report_timeout_s == 2.5
    assert config.kakao_app_key_or_default == config.app_key


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SANDBOX_KAKAO_NOT_USER_SUFFIXES", "9999-7000"),
        ("SANDBOX_KAKAO_UNCERTAIN_SUFFIXES", "12"),
        ("SANDBOX_SMS_UNDELIVERED_SUFFIXES", "x"),
        ("SANDBOX_KAKAO_VOLUME_LIMIT", "-1"),
        ("SANDBOX_SMS_REPORT_URL", "localhost:8081"),
        ("SANDBOX_KAKAO_REPORT_URL", "ftp://x/y"),
        ("SANDBOX_REPORT_DELAY_MS", "soon"),
        ("SANDBOX_REPORT_DELAY_MS", "-1"),
        ("SANDBOX_REPORT_TIMEOUT_S", "0"),
        ("SANDBOX_REPORT_TIMEOUT_S", "nan"),
        ("SANDBOX_REPORT_TIMEOUT_S", "601"),
    ],
)
def test_when_a_provider_value_is_invalid__then_the_error_names_the_variable(
    variable: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=variable):
        SandboxConfig.from_env({variable: value})


def test_when_no_templates_file_is_set__then_the_built_in_templates_apply() -> None:
    assert SandboxConfig.from_env({}).kakao_templates == BUILT_IN_TEMPLATES


def test_when_a_templates_file_is_set__then_its_templates_replace_the_built_in_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "templates.json"
    path.write_text('{"CODE": {"content": "#{text}님", "buttons": 1}}', encoding="utf-8")

    config = SandboxConfig.from_env({"SANDBOX_KAKAO_TEMPLATES_FILE": str(path)})

    assert dict(config.kakao_templates) == {"CODE": Template("#{text}님", buttons=1)}


def test_when_the_deployed_templates_file_is_read__then_it_holds_exactly_alimis_templates() -> None:
    expected = kakao_templates()
    assert json.loads(DEPLOYED_TEMPLATES.read_text(encoding="utf-8")) == expected, (
        f"{DEPLOYED_TEMPLATES} differs from alimi.templates.kakao_templates(); regenerate it "
        "as k8s/components/sandbox/README.md shows"
    )

    config = SandboxConfig.from_env({"SANDBOX_KAKAO_TEMPLATES_FILE": str(DEPLOYED_TEMPLATES)})

    assert {code: t.as_dict() for code, t in config.kakao_templates.items()} == expected


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read"),
        (b"\xff{}", "not UTF-8"),
        (b"{", "not valid JSON"),
        (b"[]", "JSON object"),
        (b"{}", "at least one template"),
        (b'{"CODE": {"content": ""}}', "template CODE: content"),
        (b'{"CODE": {"content": "x", "buttons": 6}}', "template CODE: buttons"),
        (b'{"CODE": {"content": "x", "link": "y"}}', "template CODE: unknown fields: link"),
    ],
)
def test_when_the_templates_file_is_unusable__then_the_error_names_the_variable(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "templates.json"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(ConfigError, match="SANDBOX_KAKAO_TEMPLATES_FILE") as raised:
        SandboxConfig.from_env({"SANDBOX_KAKAO_TEMPLATES_FILE": str(path)})

    assert problem in str(raised.value)
    assert "\n" not in str(raised.value)
