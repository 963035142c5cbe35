"""The pseudonym key (issue: an empty key was used without a word and its refs reversed)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from availability.settings import DEVELOPMENT_KEY, MIN_KEY_BYTES, Settings, SettingsError


@pytest.mark.parametrize("key", ["", "short", "x" * (MIN_KEY_BYTES - 1)])
def test_a_key_that_is_set_but_shorter_than_32_bytes_is_refused(key: str) -> None:
    settings = Settings(pseudonym_key=SecretStr(key))
    with pytest.raises(SettingsError, match="AVAILABILITY_PSEUDONYM_KEY is too short"):
        settings.pseudonym_key_bytes()


def test_an_empty_key_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # `AVAILABILITY_PSEUDONYM_KEY=` sets the key to "" (not unset): 0 bytes, refused.
    monkeypatch.setenv("AVAILABILITY_PSEUDONYM_KEY", "")
    with pytest.raises(SettingsError, match=r"too short \(0 bytes\)"):
        Settings().pseudonym_key_bytes()


def test_a_32_byte_key_is_used_as_given() -> None:
    key = "k" * MIN_KEY_BYTES
    assert Settings(pseudonym_key=SecretStr(key)).pseudonym_key_bytes() == key.encode()


def test_unset_means_the_development_key_which_the_commands_warn_about(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AVAILABILITY_PSEUDONYM_KEY", raising=False)
    settings = Settings()
    assert settings.uses_development_key
    assert settings.pseudonym_key_bytes() == DEVELOPMENT_KEY.encode()


def test_the_key_never_shows_in_the_settings_repr() -> None:
    secret = "s3cret-" + "x" * 40
    assert secret not in repr(Settings(pseudonym_key=SecretStr(secret)))


@pytest.mark.parametrize(
    ("given", "prefix"),
    [
        ("test", "test."),  # the issue: `test` gave `testavailability.calls`
        ("", ""),  # no prefix: the topics' own names
        ("test.", "test."),  # a separator already there: kept as given
        ("test-", "test-"),
        ("test_", "test_"),
        ("  test ", "test."),  # spaces from an env file are not part of a topic name
    ],
)
def test_the_topic_prefix_is_separated_from_the_topic_names(
    monkeypatch: pytest.MonkeyPatch, given: str, prefix: str
) -> None:
    from schemas.topics import CALLS, with_prefix

    monkeypatch.setenv("AVAILABILITY_TOPIC_PREFIX", given)
    settings = Settings()
    assert settings.topic_prefix == prefix
    assert with_prefix(CALLS, settings.topic_prefix).name == prefix + "availability.calls"


def test_a_prefix_given_without_a_separator_is_told_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """An upgraded deployment with AVAILABILITY_TOPIC_PREFIX=prod moves from prodavailability.*
    to prod.availability.*: every command that uses Kafka says so, once; `prod.` is silent."""
    from availability.wiring import Wiring

    told: list[str] = []
    monkeypatch.setenv("AVAILABILITY_TOPIC_PREFIX", "prod")
    wiring = Wiring(Settings(), tell=told.append)
    assert wiring.prefix == wiring.prefix == "prod."
    assert len(told) == 1 and "prod.availability.*" in told[0] and "prodavailability.*" in told[0], told
    monkeypatch.setenv("AVAILABILITY_TOPIC_PREFIX", "prod.")
    quiet: list[str] = []
    assert Wiring(Settings(), tell=quiet.append).prefix == "prod." and quiet == []
