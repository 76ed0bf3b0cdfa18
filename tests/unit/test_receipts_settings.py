"""Settings of the receipts service."""

from __future__ import annotations

import pytest

from alimi.settings import SettingsError, load
from alimi_receipts.settings import ReceiptsSettings


def test_when_nothing_is_set__then_the_local_defaults_apply() -> None:
    settings = load(ReceiptsSettings, {})
    assert (settings.http_port, settings.ops_port) == (8081, 9103)
    assert settings.report_secret.get_secret_value() == "sandbox-report-secret"
    assert (settings.report_max_skew_s, settings.max_body_mb) == (300, 4)


def test_when_the_report_secret_is_set__then_it_is_used_and_never_printed() -> None:
    settings = load(ReceiptsSettings, {"ALIMI_REPORT_SECRET": "a-production-secret-value"})
    assert settings.report_secret.get_secret_value() == "a-production-secret-value"
    assert "a-production-secret-value" not in repr(settings)


def test_when_the_report_secret_is_short__then_start_up_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="ALIMI_REPORT_SECRET"):
        load(ReceiptsSettings, {"ALIMI_REPORT_SECRET": "short"})
