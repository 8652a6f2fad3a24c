"""The [inverter] section: the 0x35E name and the keep-alive timeout are checked against the profile."""
import pytest

import config


def problems(**inverter):
    with pytest.raises(config.ConfigError) as raised:
        config.load().replace(inverter=inverter)
    return raised.value.problems


@pytest.mark.parametrize("inverter", [
    dict(profile="deye", manufacturer="", keepalive_timeout_s=6.0),
    dict(profile="deye", manufacturer="PYLONDIY", keepalive_timeout_s=0.0),
    dict(profile="victron", manufacturer=""),
    dict(profile="sma_si", manufacturer="ACME BMS"),
])
def test_valid_inverter_settings_load(inverter):
    assert config.load().replace(inverter=inverter).inverter.as_dict().items() >= inverter.items()


def test_deye_needs_a_pylon_name():
    assert problems(profile="deye", manufacturer="DIYPYLON") == [
        "inverter.manufacturer = 'DIYPYLON' is not allowed for profile deye: the inverter only accepts names "
        "starting with 'PYLON'"]


@pytest.mark.parametrize("name", ["NINE CHARS", "PYL\u00d6N"])
def test_manufacturer_must_be_short_printable_ascii(name):
    assert problems(manufacturer=name) == [
        "inverter.manufacturer = %r is not allowed: expected 1 to 8 printable ASCII characters" % name]


def test_deye_keepalive_timeout_covers_its_midnight_pause():
    assert problems(profile="deye", keepalive_timeout_s=5.0) == [
        "inverter.keepalive_timeout_s = 5 is below 6 for inverter.profile = 'deye': that inverter pauses its "
        "keep-alives longer; use 0 (off) or at least 6"]
