"""Where the CLI's URL and key come from: flags, the chosen profile, the environment, the
default profile, in that order; the key is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from alimi_cli.config import DEFAULT_URL, resolve
from alimi_cli.errors import CliError

CONFIG = """\
default_profile = "operator"

[profiles.operator]
url = "http://config-operator:8080"
api_key = "ak_fromoperator.operator-secret-0000"

[profiles.approver]
api_key = "ak_fromapprover.approver-secret-0000"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def test_when_nothing_is_set__then_the_local_url_and_no_key(tmp_path: Path) -> None:
    settings = resolve(env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert (settings.url, settings.api_key, settings.url_source) == (DEFAULT_URL, None, "default")
    with pytest.raises(CliError, match="no API key: set ALIMI_API_KEY"):
        settings.require_key()


def test_when_the_environment_sets_them__then_they_beat_the_default_profile(config: Path) -> None:
    env = {
        "ALIMI_CONFIG": str(config),
        "ALIMI_URL": "http://env:1/",
        "ALIMI_API_KEY": "ak_env.e",
    }
    settings = resolve(env=env)
    assert (settings.url, settings.api_key) == ("http://env:1", "ak_env.e")
    assert (settings.url_source, settings.key_source) == ("ALIMI_URL", "ALIMI_API_KEY")


def test_when_only_the_config_file_is_there__then_its_default_profile_is_used(
    config: Path,
) -> None:
    settings = resolve(env={"ALIMI_CONFIG": str(config)})
    assert settings.url == "http://config-operator:8080"
    assert settings.api_key == "ak_fromoperator.operator-secret-0000"
    assert settings.key_source == f"profile 'operator' in {config}"


def test_when_a_profile_is_chosen__then_it_beats_the_environment_and_the_rest_falls_through(
    config: Path,
) -> None:
    env = {"ALIMI_CONFIG": str(config), "ALIMI_URL": "http://env:1", "ALIMI_API_KEY": "ak_env.e"}
    settings = resolve(profile="approver", env=env)
    assert settings.api_key == "ak_fromapprover.approver-secret-0000"
    assert settings.url == "http://env:1"  # the approver profile has no url
    assert resolve(env={**env, "ALIMI_PROFILE": "approver"}).api_key == settings.api_key


def test_when_flags_are_given__then_they_beat_everything(config: Path) -> None:
    env = {"ALIMI_CONFIG": str(config), "ALIMI_API_KEY": "ak_env.e", "ALIMI_PROFILE": "approver"}
    settings = resolve(url="http://flag:2", key="ak_flag.f", profile="operator", env=env)
    assert (settings.url, settings.api_key) == ("http://flag:2", "ak_flag.f")
    assert (settings.url_source, settings.key_source) == ("--url", "--key")


def test_the_key_is_never_shown(config: Path) -> None:
    settings = resolve(env={"ALIMI_CONFIG": str(config)})
    assert "operator-secret" not in repr(settings)
    assert "operator-secret" not in settings.key_hint
    assert settings.key_hint.startswith("ak_fromoperator.…")


def test_when_the_profile_is_unknown__then_the_error_names_the_known_ones(config: Path) -> None:
    with pytest.raises(CliError, match=r"--profile 'nope' is not a profile .*approver, operator"):
        resolve(profile="nope", env={"ALIMI_CONFIG": str(config)})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("profiles = [", "is not valid TOML"),
        ("[profiles.x]\nurl = 1\n", "profiles.x.url must be a non-empty string"),
        ("[profiles.x]\ntoken = 'a'\n", r"unknown key\(s\) token"),
        ("default_profile = 'y'\n[profiles.x]\nurl = 'http://a'\n", "default_profile 'y'"),
    ],
)
def test_when_the_config_file_is_wrong__then_the_error_says_where(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(CliError, match=message) as raised:
        resolve(env={"ALIMI_CONFIG": str(path)})
    assert str(path) in raised.value.message


def test_when_alimi_config_names_a_missing_file__then_it_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="does not exist"):
        resolve(env={"ALIMI_CONFIG": str(tmp_path / "nope.toml")})


def test_when_the_url_is_not_http__then_it_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="ALIMI_URL must start with http"):
        resolve(env={"XDG_CONFIG_HOME": str(tmp_path), "ALIMI_URL": "127.0.0.1:8080"})
