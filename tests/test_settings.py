import json

import pytest

from vocalmix.errors import SettingsError
from vocalmix.settings import (
    BAND_FILTER_TYPES,
    SCHEMA_VERSION,
    CompressorSettings,
    EQBand,
    MixSettings,
    ParamSpec,
    ReverbSettings,
    describe,
    iter_numeric,
    spec_of,
)


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


@pytest.mark.parametrize(
    "path, value, fragment",
    [
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
    ],
)
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
    assert (
        spec_of(CompressorSettings, "threshold_db").minimum,
        spec_of(CompressorSettings, "threshold_db").maximum,
    ) == (-50, 10)
    assert spec_of(CompressorSettings, "release_ms").maximum == 500
    assert (spec_of(ReverbSettings, "reverb_time_s").minimum, spec_of(ReverbSettings, "reverb_time_s").maximum) == (
        0.1,
        9,
    )
    assert (spec_of(ReverbSettings, "room_size").minimum, spec_of(ReverbSettings, "room_size").maximum) == (1, 30)
    assert spec_of(ReverbSettings, "low_gain_db_per_s").maximum == 6
    assert spec_of(ReverbSettings, "high_gain_db_per_s").maximum == 4
    assert BAND_FILTER_TYPES[0][0] == "highpass1" and "lowpass_lr" in BAND_FILTER_TYPES[5]


def test_normalisation_round_trips_and_is_monotonic():
    for name, _value, spec in iter_numeric(MixSettings()):
        for u in (0.0, 0.25, 0.5, 1.0):
            v = spec.denormalise(u)
            assert spec.minimum <= v <= spec.maximum
            if not spec.integer:
                assert spec.normalise(v) == pytest.approx(u, abs=1e-9), name
        assert spec.denormalise(0.2) <= spec.denormalise(0.8)
    log_spec = ParamSpec("Hz", 20, 20000, "f", scale="log")
    assert log_spec.denormalise(0.5) == pytest.approx(632.455, rel=1e-4)  # geometric mean of 20 and 20000


def _leaf_names(node, prefix=""):
    """Dotted names of every value in a settings dict, as a settings file spells them."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaf_names(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaf_names(value, f"{prefix}[{i}]")
    else:
        yield prefix


def test_describe_lists_every_field_of_a_settings_file():
    rows = describe()
    # Every field a settings file holds, numeric or not (band types and switches, lookahead, FDN size,
    # loudness target), once each and in file order.
    assert [r["name"] for r in rows] == list(_leaf_names(MixSettings().to_dict()))
    numbers = [r for r in rows if r["kind"] == "number"]
    assert len(numbers) == sum(1 for _ in iter_numeric(MixSettings()))
    assert all(r["min"] <= r["default"] <= r["max"] for r in numbers)
    by_name = {r["name"]: r for r in rows}
    assert "whole number" in by_name["reverb.room_size"]["rule"]
    assert by_name["eq.bands[0].type"]["choices"] == list(BAND_FILTER_TYPES[0])
    assert by_name["reverb.fdn_lines"]["choices"] == [16, 32, 64, 128, 256]
    assert by_name["output.target_loudness_lufs"]["default"] is None


def test_settings_command_prints_a_header_and_every_field(capsys):
    from vocalmix.cli import main

    assert main(["settings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["setting", "default", "unit", "range"]
    listed = [line.split()[0] for line in lines[2:] if line.strip()]
    for name in _leaf_names(MixSettings().to_dict()):
        assert name in listed
    room = next(line for line in lines if line.startswith("reverb.room_size"))
    assert "whole number" in room


def test_misspelt_field_gets_a_suggestion():
    with pytest.raises(
        SettingsError,
        match=r"'compressor.treshold_db' is not a known field; did you mean "
        r"'threshold_db'\?",
    ):
        MixSettings.from_json(
            _doc(**{"compressor.treshold_db": -20}).replace('"threshold_db": 0.0,', ""), source="my.json"
        )


def test_broken_json_names_line_and_column():
    text = MixSettings().to_json().replace('"ratio": 1.0,', '"ratio": 1.0,,')
    line = next(i for i, row in enumerate(text.splitlines(), start=1) if ",," in row)
    column = text.splitlines()[line - 1].index(",,") + 2
    with pytest.raises(SettingsError, match=f"at line {line}, column {column}"):
        MixSettings.from_json(text, source="my.json")


def test_missing_fields_are_named_unless_defaults_are_asked_for(caplog):
    import logging

    doc = json.loads(MixSettings().to_json())
    del doc["settings"]["level"]
    del doc["settings"]["reverb"]["fade_in_s"]
    with pytest.raises(SettingsError) as err:
        MixSettings.from_json(json.dumps(doc), source="my.json")
    assert "reverb.fade_in_s" in str(err.value) and "level" in str(err.value) and "--fill-defaults" in str(err.value)
    logger = logging.getLogger("vocalmix")
    logger.addHandler(caplog.handler)  # the CLI stops propagation to the root logger
    try:
        filled = MixSettings.from_json(json.dumps(doc), source="my.json", fill_defaults=True)
    finally:
        logger.removeHandler(caplog.handler)
    assert filled == MixSettings()
    assert "reverb.fade_in_s" in caplog.text and "level" in caplog.text
