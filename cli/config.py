"""Where ``alimi`` sends its requests, and with which API key.

Each of the two settings is taken from the first of these that has it:

1. ``--url`` / ``--key`` on the command line;
2. the profile chosen with ``--profile NAME`` (or ``ALIMI_PROFILE``) in the config file;
3. ``ALIMI_URL`` / ``ALIMI_API_KEY`` in the environment;
4. the config file's default profile (``default_profile``, else the one named ``default``);
5. for the URL only, ``http://127.0.0.1:8080`` (``make run``'s intake).

The config file is ``$ALIMI_CONFIG``, else ``~/.config/alimi/config.toml``
(``$XDG_CONFIG_HOME`` is honoured)::

    default_profile = "operator"

    [profiles.operator]
    url = "http://127.0.0.1:8080"
    api_key = "ak_localoperator.local-operator-secret"

    [profiles.approver]
    api_key = "ak_localapprover.local-approver-secret"

The key is a secret: :class:`Settings` never shows it (``repr``, ``key_hint``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alimi_cli.errors import CliError

DEFAULT_URL = "http://127.0.0.1:8080"
PROFILE_KEYS = ("url", "api_key")


@dataclass(frozen=True)
class Settings:
    url: str
    api_key: str | None = field(repr=False)
    # Where each value came from, as a person would name it ("--url", "ALIMI_API_KEY", ...).
    url_source: str = "default"
    key_source: str = "none"
    config_path: Path | None = None

    @property
    def key_hint(self) -> str:
        """The key's public id, never its secret: ``ak_localoperator.…``."""
        if not self.api_key:
            return "no key"
        key_id = self.api_key.split(".", 1)[0]
        return f"{key_id}.… (from {self.key_source})"

    def require_key(self) -> str:
        if not self.api_key:
            raise CliError(
                "no API key: set ALIMI_API_KEY, pass --key, or add api_key to a profile in "
                f"{self.config_path or default_config_path(os.environ)} (see alimi --help)"
            )
        return self.api_key


def default_config_path(env: Mapping[str, str]) -> Path:
    if env.get("ALIMI_CONFIG"):
        return Path(env["ALIMI_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "alimi" / "config.toml"


def load_profiles(path: Path, *, required: bool) -> tuple[dict[str, dict[str, str]], str | None]:
    """(profiles by name, the default profile's name) of the file at ``path``.

    A missing file is no profiles, unless ``required`` (``$ALIMI_CONFIG`` names it).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise CliError(f"config file {path} (ALIMI_CONFIG) does not exist") from None
        return {}, None
    except OSError as exc:
        raise CliError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"config file {path} is not valid TOML: {exc}") from None
    profiles_raw = data.get("profiles", {})
    if not isinstance(profiles_raw, dict):
        raise CliError(f"config file {path}: 'profiles' must be a table ([profiles.NAME])")
    profiles: dict[str, dict[str, str]] = {}
    for name, values in profiles_raw.items():
        profiles[name] = _profile(path, name, values)
    default = data.get("default_profile")
    if default is not None and (not isinstance(default, str) or default not in profiles):
        raise CliError(
            f"config file {path}: default_profile {default!r} is not one of its profiles "
            f"({', '.join(sorted(profiles)) or 'none'})"
        )
    return profiles, default


def _profile(path: Path, name: str, values: Any) -> dict[str, str]:
    if not isinstance(values, dict):
        raise CliError(f"config file {path}: [profiles.{name}] must be a table")
    unknown = sorted(set(values) - set(PROFILE_KEYS))
    if unknown:
        raise CliError(
            f"config file {path}: [profiles.{name}] has unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(PROFILE_KEYS)}"
        )
    for key, value in values.items():
        if not isinstance(value, str) or not value.strip():
            raise CliError(f"config file {path}: profiles.{name}.{key} must be a non-empty string")
    return {k: v.strip() for k, v in values.items()}


def resolve(
    *,
    url: str | None = None,
    key: str | None = None,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """The settings from the command line's values, ``env`` and the config file."""
    env = os.environ if env is None else env
    path = default_config_path(env)
    profiles, default_name = load_profiles(path, required=bool(env.get("ALIMI_CONFIG")))
    chosen_name = profile or env.get("ALIMI_PROFILE") or None
    chosen: dict[str, str] = {}
    if chosen_name is not None:
        if chosen_name not in profiles:
            known = ", ".join(sorted(profiles)) or f"none: {path} has no [profiles.NAME]"
            how = "--profile" if profile else "ALIMI_PROFILE"
            raise CliError(f"{how} {chosen_name!r} is not a profile in {path} (known: {known})")
        chosen = profiles[chosen_name]
    fallback_name = default_name or ("default" if "default" in profiles else None)
    fallback = profiles.get(fallback_name, {}) if fallback_name else {}

    def pick(flag: str | None, name: str, variable: str) -> tuple[str | None, str]:
        candidates = (
            (flag, f"--{'key' if name == 'api_key' else name}"),
            (chosen.get(name), f"profile {chosen_name!r} in {path}"),
            (env.get(variable), variable),
            (fallback.get(name), f"profile {fallback_name!r} in {path}"),
        )
        for value, source in candidates:
            if value and value.strip():
                return value.strip(), source
        return None, "none"

    found_url, url_source = pick(url, "url", "ALIMI_URL")
    found_key, key_source = pick(key, "api_key", "ALIMI_API_KEY")
    if found_url is None:
        found_url, url_source = DEFAULT_URL, "default"
    if not found_url.startswith(("http://", "https://")):
        raise CliError(f"the API URL from {url_source} must start with http:// or https://")
    return Settings(
        url=found_url.rstrip("/"),
        api_key=found_key,
        url_source=url_source,
        key_source=key_source,
        config_path=path,
    )
