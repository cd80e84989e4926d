import json

import pytest

from vocalmix.errors import SettingsError
from vocalmix.settings import (BAND_FILTER_TYPES, SCHEMA_VERSION, CompressorSettings, EQBand, MixSettings,
                               ParamSpec, ReverbSettings, describe, iter_numeric, spec_of)


def _doc(**changes):
    doc = json.loads(MixSettings().to_json(method="test"))
    for path, value in changes.items():
        node = doc["settings"]
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if k.isdigit() else node[k]
        node[keys[-1]] = value
    return json.dumps(doc)


def test_defaults_are_valid_and_round_trip_through_json():
    s = MixSettings()
    s.validate()
    assert MixSettings.from_json(s.to_json()) == s


def test_edited_settings_round_trip_exactly():
    s = MixSettings()
    s.eq.bands[2] = EQBand(enabled=True, type="peak", frequency_hz=1234.5, q=1.3, gain_db=-4.25)
    s.compressor.threshold_db = -17.3
    s.reverb.dry_wet_pct = 22.0
    s.output.target_loudness_lufs = -14.0
    again = MixSettings.from_json(s.to_json(method="x", report={"a": 1}))
    assert again == s
    assert json.loads(s.to_json())["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize("path, value, fragment", [
    ("compressor.ratio", 40, "compressor.ratio"),
    ("reverb.reverb_time_s", 0.0, "reverb.reverb_time_s"),
    ("eq.bands.1.gain_db", 30, "eq.bands[1].gain_db"),
    ("eq.bands.1.gain_db", "loud", "eq.bands[1].gain_db"),
    ("level.vocal_gain_db", None, "level.vocal_gain_db"),
    ("compressor.lookahead", "yes", "compressor.lookahead"),
    ("reverb.room_size", 2.5, "reverb.room_size"),
    ("reverb.fdn_lines", 48, "reverb.fdn_lines"),
    ("eq.bands.0.type", "peak", "eq.bands[0].type"),
    ("reverb.colour", 1, "reverb.colour"),
])
def test_bad_fields_are_named(path, value, fragment):
    with pytest.raises(SettingsError) as err:
        MixSettings.from_json(_doc(**{path: value}), source="my.json")
    assert fragment in str(err.value)
    assert str(err.value).startswith("my.json:")
    assert "\n" not in str(err.value)


def test_nan_is_refused():
    text = _doc(**{"compressor.threshold_db": 1}).replace('"threshold_db": 1', '"threshold_db": NaN')
    with pytest.raises(SettingsError, match="finite"):
        MixSettings.from_json(text)


def test_wrong_schema_version_and_bad_json():
    doc = json.loads(MixSettings().to_json())
    doc["schema_version"] = 99
    with pytest.raises(SettingsError, match="schema_version"):
        MixSettings.from_json(json.dumps(doc))
    with pytest.raises(SettingsError, match="not valid JSON"):
        MixSettings.from_json("{nope")


def test_ranges_follow_the_iem_plugins():
    # Ranges from the plug-ins' parameter tables (shared/notes/iem-plugins.md).
    assert (spec_of(EQBand, "frequency_hz").minimum, spec_of(EQBand, "frequency_hz").maximum) == (20, 20000)
    assert (spec_of(EQBand, "q").minimum, spec_of(EQBand, "q").maximum) == (0.05, 8)
    assert (spec_of(EQBand, "gain_db").minimum, spec_of(EQBand, "gain_db").maximum) == (-60, 15)
    assert (spec_of(CompressorSettings, "threshold_db").minimum, spec_of(CompressorSettings, "threshold_db").maximum) == (-50, 10)
    assert spec_of(CompressorSettings, "release_ms").maximum == 500
    assert (spec_of(ReverbSettings, "reverb_time_s").minimum, spec_of(ReverbSettings, "reverb_time_s").maximum) == (0.1, 9)
    assert (spec_of(ReverbSettings, "room_size").minimum, spec_of(ReverbSettings, "room_size").maximum) == (1, 30)
    assert spec_of(ReverbSettings, "low_gain_db_per_s").maximum == 6
    assert spec_of(ReverbSettings, "high_gain_db_per_s").maximum == 4
    assert BAND_FILTER_TYPES[0][0] == "highpass1" and "lowpass_lr" in BAND_FILTER_TYPES[5]


def test_normalisation_round_trips_and_is_monotonic():
    for name, value, spec in iter_numeric(MixSettings()):
        for u in (0.0, 0.25, 0.5, 1.0):
            v = spec.denormalise(u)
            assert spec.minimum <= v <= spec.maximum
            if not spec.integer:
                assert spec.normalise(v) == pytest.approx(u, abs=1e-9), name
        assert spec.denormalise(0.2) <= spec.denormalise(0.8)
    log_spec = ParamSpec("Hz", 20, 20000, "f", scale="log")
    assert log_spec.denormalise(0.5) == pytest.approx(632.455, rel=1e-4)  # geometric mean of 20 and 20000


def test_describe_lists_every_numeric_field_with_unit_and_range():
    rows = describe()
    names = {r["name"] for r in rows}
    assert "compressor.attack_ms" in names and "reverb.dry_wet_pct" in names and "eq.bands[5].gain_db" in names
    numeric_fields = sum(1 for _ in iter_numeric(MixSettings()))
    assert len(rows) == numeric_fields
    assert all(r["min"] <= r["default"] <= r["max"] for r in rows)
