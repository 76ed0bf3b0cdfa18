"""Service settings read from ALIMI_* environment variables."""

import pytest
from pydantic import SecretStr

from alimi.bus import Bus
from alimi.settings import BaseSettings, PhoneKeySettings, SettingsError, env_name, load
from alimi_delivery.settings import DeliverySettings
from alimi_intake.settings import IntakeSettings
from alimi_segmenter.settings import SegmenterSettings

ALL_SETTINGS = [BaseSettings, IntakeSettings, SegmenterSettings, DeliverySettings]


def test_when_a_field_is_named__then_its_variable_is_alimi_and_upper_case() -> None:
    assert env_name("amqp_url") == "ALIMI_AMQP_URL"


@pytest.mark.parametrize("model", ALL_SETTINGS)
def test_when_nothing_is_set__then_every_default_is_valid(model: type[BaseSettings]) -> None:
    settings = load(model, {})
    assert settings.namespace == "alimi"
    assert settings.log_level == "INFO"
    assert settings.quorum_queues is False


@pytest.mark.parametrize(
    ("model", "port"),
    [
        (BaseSettings, 9100),
        (IntakeSettings, 9100),
        (SegmenterSettings, 9101),
        (DeliverySettings, 9102),
    ],
)
def test_when_nothing_is_set__then_each_service_has_its_own_ops_port(
    model: type[BaseSettings], port: int
) -> None:
    assert load(model, {}).ops_port == port


def test_when_shared_variables_are_set__then_they_are_read_and_converted() -> None:
    settings = load(
        IntakeSettings,
        {
            "ALIMI_NAMESPACE": "test_1",
            "ALIMI_AMQP_URL": "amqp://u:p@rabbit:5672/",
            "ALIMI_MONGO_URL": "mongodb://mongo:27017/",
            "ALIMI_MONGO_DB": "alimi_test",
            "ALIMI_OPS_HOST": "127.0.0.1",
            "ALIMI_OPS_PORT": "0",
            "ALIMI_LOG_LEVEL": "DEBUG",
            "ALIMI_PHONE_HASH_KEY": "k" * 32,
            "ALIMI_QUORUM_QUEUES": "true",
        },
    )
    assert settings.namespace == "test_1"
    assert settings.amqp_url.get_secret_value() == "amqp://u:p@rabbit:5672/"
    assert settings.mongo_url.get_secret_value() == "mongodb://mongo:27017/"
    assert settings.mongo_db == "alimi_test"
    assert (settings.ops_host, settings.ops_port) == ("127.0.0.1", 0)
    assert settings.log_level == "DEBUG"
    assert settings.phone_hash_key.get_secret_value() == "k" * 32
    assert settings.quorum_queues is True


def test_when_intake_variables_are_set__then_they_are_read_and_converted() -> None:
    settings = load(
        IntakeSettings,
        {
            "ALIMI_HTTP_HOST": "127.0.0.1",
            "ALIMI_HTTP_PORT": "18080",
            "ALIMI_PUBLIC_BASE_URL": "https://status.example.org",
            "ALIMI_OUTBOX_POLL_S": "0.25",
            "ALIMI_MAX_BODY_MB": "4",
        },
    )
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 18080)
    assert settings.public_base_url == "https://status.example.org"
    assert settings.outbox_poll_s == 0.25
    assert settings.max_body_mb == 4


def test_when_segmenter_variables_are_set__then_they_are_read_and_converted() -> None:
    settings = load(
        SegmenterSettings,
        {
            "ALIMI_BATCH_SIZE": "250",
            "ALIMI_PREFETCH": "4",
            "ALIMI_PROGRESS_INTERVAL_S": "0.5",
            "ALIMI_DRAIN_GRACE_S": "0",
        },
    )
    assert (settings.batch_size, settings.prefetch) == (250, 4)
    assert (settings.progress_interval_s, settings.drain_grace_s) == (0.5, 0.0)


def test_when_delivery_variables_are_set__then_they_are_read_and_converted() -> None:
    settings = load(
        DeliverySettings,
        {
            "ALIMI_PREFETCH": "16",
            "ALIMI_PROVIDER_TIMEOUT_S": "2.5",
            "ALIMI_SMS_API_URL": "https://api-sms.example.com",
            "ALIMI_SMS_APP_KEY": "app",
            "ALIMI_SMS_SECRET_KEY": "s3cret",
            "ALIMI_SMS_SENDER_NO": "16440000",
        },
    )
    assert (settings.prefetch, settings.provider_timeout_s) == (16, 2.5)
    assert settings.sms_api_url == "https://api-sms.example.com"
    assert settings.sms_app_key == "app"
    assert settings.sms_secret_key.get_secret_value() == "s3cret"
    assert settings.sms_sender_no == "16440000"


def test_when_unrelated_variables_are_set__then_they_are_ignored() -> None:
    settings = load(
        SegmenterSettings,
        {"ALIMI_HTTP_PORT": "x", "BATCH_SIZE": "0", "alimi_batch_size": "0", "HOME": "/root"},
    )
    assert settings.batch_size == 100


@pytest.mark.parametrize(
    ("model", "variable", "value"),
    [
        (BaseSettings, "ALIMI_OPS_PORT", "http"),
        (BaseSettings, "ALIMI_OPS_PORT", "70000"),
        (BaseSettings, "ALIMI_OPS_PORT", ""),
        (BaseSettings, "ALIMI_NAMESPACE", "Alimi"),
        (BaseSettings, "ALIMI_NAMESPACE", "a/b"),
        (BaseSettings, "ALIMI_MONGO_DB", "bad name"),
        (BaseSettings, "ALIMI_LOG_LEVEL", "debug"),
        (IntakeSettings, "ALIMI_HTTP_PORT", "-1"),
        (IntakeSettings, "ALIMI_OUTBOX_POLL_S", "0"),
        (IntakeSettings, "ALIMI_MAX_BODY_MB", "2048"),
        (SegmenterSettings, "ALIMI_BATCH_SIZE", "0"),
        (SegmenterSettings, "ALIMI_BATCH_SIZE", "1001"),
        (SegmenterSettings, "ALIMI_PROGRESS_INTERVAL_S", "soon"),
        (SegmenterSettings, "ALIMI_DRAIN_GRACE_S", "-1"),
        (DeliverySettings, "ALIMI_PREFETCH", "0"),
        (DeliverySettings, "ALIMI_PROVIDER_TIMEOUT_S", "0"),
        (DeliverySettings, "ALIMI_SMS_APP_KEY", ""),
        (DeliverySettings, "ALIMI_SMS_SENDER_NO", "02-1599-0000"),
    ],
)
def test_when_a_value_is_invalid__then_settings_error_names_its_variable(
    model: type[BaseSettings], variable: str, value: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load(model, {variable: value})
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{variable}: ")
    assert variable in str(caught.value)


def test_when_several_values_are_invalid__then_every_problem_is_listed() -> None:
    with pytest.raises(SettingsError) as caught:
        load(
            IntakeSettings,
            {"ALIMI_OPS_PORT": "x", "ALIMI_HTTP_PORT": "70000", "ALIMI_LOG_LEVEL": "loud"},
        )
    named = sorted(p.split(":")[0] for p in caught.value.problems)
    assert named == ["ALIMI_HTTP_PORT", "ALIMI_LOG_LEVEL", "ALIMI_OPS_PORT"]
    message = str(caught.value)
    assert message.startswith("invalid configuration: ")
    assert all(name in message for name in named)


def test_when_a_value_is_invalid__then_the_error_says_what_is_expected() -> None:
    with pytest.raises(SettingsError, match="less than or equal to 65535"):
        load(BaseSettings, {"ALIMI_OPS_PORT": "70000"})


def test_when_a_value_is_invalid__then_the_value_itself_is_not_in_the_error() -> None:
    with pytest.raises(SettingsError) as caught:
        load(DeliverySettings, {"ALIMI_SMS_SENDER_NO": "hunter2-sender"})
    assert "hunter2" not in str(caught.value)


def test_when_settings_error_is_raised__then_no_validation_error_is_chained() -> None:
    with pytest.raises(SettingsError) as caught:
        load(BaseSettings, {"ALIMI_OPS_PORT": "x"})
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("ALIMI_AMQP_URL", "amqp_url"),
        ("ALIMI_MONGO_URL", "mongo_url"),
        ("ALIMI_PHONE_HASH_KEY", "phone_hash_key"),
        ("ALIMI_SMS_SECRET_KEY", "sms_secret_key"),
    ],
)
def test_when_a_secret_is_set__then_it_is_a_secret_str_hidden_from_repr_and_str(
    variable: str, field: str
) -> None:
    settings = load(DeliverySettings, {variable: "amqp://user:hunter2@host/"})
    value = getattr(settings, field)
    assert isinstance(value, SecretStr)
    assert value.get_secret_value() == "amqp://user:hunter2@host/"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)
    assert "hunter2" not in settings.model_dump_json()


def test_when_a_setting_is_assigned__then_it_is_refused() -> None:
    settings = load(SegmenterSettings, {})
    with pytest.raises(ValueError, match="frozen"):
        settings.batch_size = 5  # type: ignore[misc]


@pytest.mark.parametrize("variable", ["ALIMI_PHONE_HASH_KEY", "ALIMI_SMS_SECRET_KEY"])
def test_when_a_secret_key_is_empty__then_settings_error_names_its_variable(variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load(DeliverySettings, {variable: ""})


def test_when_retry_delays_are_given__then_there_is_one_per_step() -> None:
    settings = load(DeliverySettings, {"ALIMI_RETRY_DELAYS_S": "0.5, 1, 2"})
    assert settings.retry_delays == (0.5, 1.0, 2.0)


@pytest.mark.parametrize("value", ["5,30", "5,30,300,900", "5,x,300", "0,1,2", "-1,1,2"])
def test_when_retry_delays_are_wrong__then_the_variable_is_named(value: str) -> None:
    with pytest.raises(SettingsError, match="ALIMI_RETRY_DELAYS_S"):
        load(DeliverySettings, {"ALIMI_RETRY_DELAYS_S": value})


def test_when_the_claim_lease_is_shorter_than_two_provider_calls__then_it_is_refused() -> None:
    with pytest.raises(SettingsError, match="ALIMI_CLAIM_LEASE_S must be at least twice"):
        load(DeliverySettings, {"ALIMI_CLAIM_LEASE_S": "15", "ALIMI_PROVIDER_TIMEOUT_S": "10"})
    assert load(DeliverySettings, {"ALIMI_CLAIM_LEASE_S": "20"}).claim_lease_s == 20


PHONE_KEYS = "k2:" + "A" * 43 + "=,k1:" + "B" * 43 + "="


@pytest.mark.parametrize("model", [IntakeSettings, SegmenterSettings])
def test_when_phone_keys_are_set__then_the_first_encrypts_and_all_decrypt(
    model: type[PhoneKeySettings],
) -> None:
    settings = load(model, {"ALIMI_PHONE_KEYS": PHONE_KEYS})
    assert settings.phone_keyring.current == "k2"
    assert settings.phone_keyring.key_ids == ("k2", "k1")
    assert settings.startup_warnings() == []
    assert "AAAA" not in repr(settings) and "AAAA" not in settings.model_dump_json()


@pytest.mark.parametrize("model", [IntakeSettings, SegmenterSettings])
def test_when_no_phone_keys_are_set__then_the_development_key_is_used_with_a_warning(
    model: type[PhoneKeySettings],
) -> None:
    settings = load(model, {})
    assert settings.phone_keyring.current == "dev"
    assert settings.phone_keyring.development
    [warning] = settings.startup_warnings()
    assert "ALIMI_PHONE_KEYS" in warning and "development key" in warning


def test_when_a_service_handles_no_phone_numbers__then_it_has_no_phone_key() -> None:
    assert "phone_keys" not in DeliverySettings.model_fields
    assert "phone_keys" not in BaseSettings.model_fields
    assert load(DeliverySettings, {}).startup_warnings() == []


@pytest.mark.parametrize(
    "value",
    ["", "k1", "k1:short", "k1:" + "A" * 43 + "=,k1:" + "B" * 43 + "=", "k1:" + "A" * 42 + "!="],
)
def test_when_phone_keys_are_wrong__then_the_variable_is_named_without_the_keys(
    value: str,
) -> None:
    with pytest.raises(SettingsError) as caught:
        load(IntakeSettings, {"ALIMI_PHONE_KEYS": value})
    [problem] = caught.value.problems
    assert problem.startswith("ALIMI_PHONE_KEYS: ")
    assert "AAAA" not in str(caught.value) and "BBBB" not in str(caught.value)


def test_when_the_contact_retention_is_set__then_it_is_read_in_days() -> None:
    assert load(IntakeSettings, {}).contact_retention_days == 365
    assert load(IntakeSettings, {"ALIMI_CONTACT_RETENTION_DAYS": "30"}).contact_retention_days == 30
    with pytest.raises(SettingsError, match="ALIMI_CONTACT_RETENTION_DAYS"):
        load(IntakeSettings, {"ALIMI_CONTACT_RETENTION_DAYS": "0"})


def test_when_a_service_builds_its_bus__then_settings_choose_broker_namespace_and_type() -> None:
    settings = load(
        BaseSettings,
        {
            "ALIMI_AMQP_URL": "amqp://u:p@rabbit:5672/",
            "ALIMI_NAMESPACE": "prod",
            "ALIMI_QUORUM_QUEUES": "true",
        },
    )
    bus = Bus.from_settings(settings)
    assert (bus.url, bus.names.namespace, bus.quorum_queues) == (
        "amqp://u:p@rabbit:5672/",
        "prod",
        True,
    )


def test_when_the_broker_url_lists_cluster_nodes__then_the_bus_tries_each_in_turn() -> None:
    settings = load(
        BaseSettings,
        {"ALIMI_AMQP_URL": "amqp://u:p@rabbit-0:5672/, amqp://u:p@rabbit-1:5672/,"},
    )
    bus = Bus.from_settings(settings)
    assert bus._link.urls == ("amqp://u:p@rabbit-0:5672/", "amqp://u:p@rabbit-1:5672/")


def test_when_a_broker_node_url_is_not_amqp__then_start_up_names_which_but_not_the_url() -> None:
    with pytest.raises(SettingsError, match=r"ALIMI_AMQP_URL: .*URL 2 of 2") as caught:
        load(BaseSettings, {"ALIMI_AMQP_URL": "amqp://u:p@a:5672/,http://u:hunter2@b/"})
    assert "hunter2" not in str(caught.value)
