"""Export to IEM plug-in states, .vstpreset, pedalboard and a mix sheet, and import back.

The expected IDs, ranges, defaults, enum values, class IDs and byte layouts are
written out here from ``shared/notes/iem-plugins.md`` (sections 1 and 3) rather
than taken from ``vocalmix.plugins``, so the tests check the code against the notes.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from vocalmix.errors import InputError
from vocalmix.export import FORMATS, export_files, export_paths, export_settings
from vocalmix.pedalboard_script import SCRIPT_FILE, pedalboard_name, python_parameter_name
from vocalmix.plugins import PLUGINS, plugin_states, snap_to_plugin_grids
from vocalmix.preset_formats import juce_double_text
from vocalmix.preset_import import import_settings
from vocalmix.settings import MixSettings, describe

# -- the notes, section 1: id -> (min, max, step, default) ------------------------------------
MULTIEQ = {"inputChannelsSetting": (0, 64, 1, 0)}
for _i, (_f, _t_max) in enumerate(zip((20, 120, 500, 2200, 8000, 16000), (3, 2, 2, 2, 2, 3))):
    MULTIEQ.update(
        {
            f"filterEnabled{_i}": (0, 1, 1, 1),
            f"filterType{_i}": (0, _t_max, 1, None),  # v1.14 stored values
            f"filterFrequency{_i}": (20, 20000, 1, _f),
            f"filterQ{_i}": (0.05, 8, 0.05, 0.7),
            f"filterGain{_i}": (-60, 15, 0.1, 0),
        }
    )
OMNICOMPRESSOR = {
    "orderSetting": (0, 8, 1, 0),
    "useSN3D": (0, 1, 1, 1),
    "threshold": (-50, 10, 0.1, -10),
    "knee": (0, 30, 0.1, 0),
    "attack": (0, 100, 0.1, 30),
    "release": (0, 500, 0.1, 150),
    "ratio": (1, 16, 0.2, 4),
    "outGain": (-10, 20, 0.1, 0),
    "lookAhead": (0, 1, 1, 0),
    "reportLatency": (0, 1, 1, 1),
}
FDNREVERB = {
    "delayLength": (1, 30, 1, 20),
    "revTime": (0.1, 9, 0.1, 5),
    "lowCutoff": (20, 20000, 1, 100),
    "highCutoff": (20, 20000, 1, 2000),
    "lowQ": (0.01, 0.9, 0.01, 0.5),
    "highQ": (0.01, 0.9, 0.01, 0.5),
    "lowGain": (-80, 6, 0.1, 1),
    "highGain": (-80, 4, 0.1, -10),
    "hpOrder": (0, 3, 1, 0),
    "hpFrequency": (20, 20000, 1, 20),
    "hpQ": (0.01, 0.9, 0.01, 0.7),
    "dryWet": (0, 1, 0.01, 0.5),
    "fadeInTime": (0, 9, 0.01, 0),
    "fdnSize": (0, 4, 1, 2),
    "freeze": (0, 1, 1, 0),
}
NOTES_PARAMS = {"MultiEQ": MULTIEQ, "OmniCompressor": OMNICOMPRESSOR, "FdnReverb": FDNREVERB}
# Parameters no vocalmix setting controls are written with the plug-in's default.
UNCONTROLLED = {
    "MultiEQ": ["inputChannelsSetting"],
    "OmniCompressor": ["orderSetting", "useSN3D", "reportLatency"],
    "FdnReverb": ["hpOrder", "hpFrequency", "hpQ", "freeze"],
}
CLASS_IDS = {  # section 3
    "MultiEQ": "ABCDEF019182FAEB49454D414D754551",
    "OmniCompressor": "ABCDEF019182FAEB49454D414F6D436F",
    "FdnReverb": "ABCDEF019182FAEB49454D4146645265",
}
XML_HEADER = '<?xml version="1.0" encoding="UTF-8"?> '
ALL_FILES = sorted(f"{p}{ext}" for p in NOTES_PARAMS for ext in (".xml", ".bin", ".vstpreset")) + sorted(
    ["vocal_chain.json", "vocal_chain_pedalboard.py", "mix_sheet.md"]
)


@pytest.fixture
def warnings_log(caplog):
    """Warnings of the 'vocalmix' logger, whether or not the CLI turned its propagation off."""
    logger = logging.getLogger("vocalmix")
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.propagate = False  # or the root logger's copy of caplog's handler records everything twice
    caplog.handler.setLevel(logging.WARNING)
    logger.setLevel(logging.DEBUG)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(old_level)
    logger.propagate = old_propagate


def on_grid_settings() -> MixSettings:
    """Settings every plug-in can hold exactly, with non-default values everywhere."""
    s = MixSettings()
    bands = s.eq.bands
    bands[0].enabled, bands[0].type, bands[0].frequency_hz, bands[0].q = True, "highpass_lr", 85.0, 0.7
    bands[1].enabled, bands[1].type, bands[1].frequency_hz = True, "low_shelf", 180.0
    bands[1].q, bands[1].gain_db = 0.9, 2.5
    bands[2].enabled, bands[2].frequency_hz, bands[2].q, bands[2].gain_db = True, 2500.0, 1.4, -4.5
    bands[3].enabled, bands[3].type, bands[3].frequency_hz, bands[3].gain_db = True, "high_shelf", 6000.0, 1.2
    bands[5].enabled, bands[5].type, bands[5].frequency_hz, bands[5].q = True, "lowpass2", 15000.0, 0.7
    c = s.compressor
    c.threshold_db, c.ratio, c.knee_db, c.attack_ms, c.release_ms, c.makeup_db = -18.3, 3.2, 6.0, 12.5, 120.0, 4.2
    c.lookahead = True
    r = s.reverb
    r.room_size, r.reverb_time_s, r.low_cutoff_hz, r.low_q, r.low_gain_db_per_s = 12.0, 1.4, 250.0, 0.35, -2.5
    r.high_cutoff_hz, r.high_q, r.high_gain_db_per_s, r.dry_wet_pct, r.fade_in_s = 4000.0, 0.6, -14.2, 23.0, 0.05
    r.fdn_lines = 32
    s.level.vocal_gain_db = -2.75
    s.output.target_loudness_lufs = -14.0
    return s.validate()


def off_grid_settings() -> MixSettings:
    s = on_grid_settings()
    s.eq.bands[2].frequency_hz = 2500.4
    s.eq.bands[2].q = 1.42
    s.eq.bands[2].gain_db = -4.47
    s.compressor.ratio = 2.5
    s.compressor.threshold_db = -18.33
    s.reverb.dry_wet_pct = 15.5
    s.reverb.reverb_time_s = 1.44
    return s.validate()


def read_dir(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def xml_params(text: str) -> tuple[str, list[tuple[str, str]], dict]:
    root = ET.fromstring(text)
    params = [(e.get("id"), e.get("value")) for e in root if e.tag == "PARAM"]
    osc = [e.attrib for e in root if e.tag == "OSCConfig"]
    assert len(osc) == 1
    return root.tag, params, osc[0]


# -- XML against the notes ----------------------------------------------------------------------
@pytest.mark.parametrize("plugin", list(NOTES_PARAMS))
def test_state_xml_has_every_parameter_on_grid_in_range(tmp_path, plugin):
    export_settings(on_grid_settings(), tmp_path, formats=["iem"])
    text = (tmp_path / f"{plugin}.xml").read_text(encoding="utf-8")
    # One line, JUCE's header, a space, then the root element named after the plug-in.
    assert "\n" not in text and text.startswith(XML_HEADER + f"<{plugin}>") and text.endswith(f"</{plugin}>")
    tag, params, osc = xml_params(text)
    assert tag == plugin
    expected = NOTES_PARAMS[plugin]
    ids = [pid for pid, _ in params]
    assert sorted(ids) == sorted(expected), "every parameter of the notes, and no other"
    assert ids == sorted(ids), "a fresh APVTS lists its parameters sorted by ID"
    for pid, text_value in params:
        low, high, step, _ = expected[pid]
        value = float(text_value)
        assert low <= value <= high, (pid, value)
        k = round((value - low) / step)
        assert abs(value - (low + k * step)) < 1e-5 * max(1.0, abs(value)), f"{pid} = {value} is off its grid"
        # The plug-in keeps a float32 and JUCE prints it as a double with ~16 significant digits.
        assert text_value == juce_double_text(float(np.float32(value))), f"{pid}: {text_value}"
    assert osc == {
        "ReceiverPort": "-1",
        "SenderIP": "",
        "SenderPort": "-1",
        "SenderOSCAddress": f"/{plugin}/",
        "SenderInterval": "100",
    }
    values = {pid: float(v) for pid, v in params}
    for pid in UNCONTROLLED[plugin]:
        assert values[pid] == pytest.approx(expected[pid][3], abs=1e-6), f"{pid} keeps the plug-in default"


def test_plugin_tables_match_the_notes():
    for plugin in PLUGINS:
        notes = NOTES_PARAMS[plugin.name]
        assert [p.id for p in plugin.params if p.id in notes] == [p.id for p in plugin.params]
        for param in plugin.params:
            low, high, step, _ = notes[param.id]
            assert (param.start, param.end, param.interval) == pytest.approx((low, high, step)), param.id


def test_each_setting_range_is_the_plugin_range_it_binds_to():
    """A setting's range (settings schema) is the range of the plug-in parameter it maps onto, read
    from the notes, so neither can drift: one range, one place, checked against the plug-ins."""
    rows = {row["name"]: row for row in describe()}
    bound: dict[str, list[str]] = {}
    for plugin in PLUGINS:
        notes = NOTES_PARAMS[plugin.name]
        for param_id, binding in plugin.bindings.items():
            bound.setdefault(binding.setting, []).append(f"{plugin.name}.{param_id}")
            if binding.kind != "number":
                continue
            row = rows[binding.setting]
            low, high, step, _ = notes[param_id]
            assert (row["min"] * binding.scale, row["max"] * binding.scale) == pytest.approx((low, high)), (
                f"{binding.setting} vs {plugin.name}.{param_id}"
            )
            if row["rule"].startswith("whole number"):  # the plug-in must hold every whole number in range
                assert step == 1 and binding.scale == 1, binding.setting
    chain_settings = [name for name in rows if name.split(".")[0] in ("eq", "compressor", "reverb")]
    assert sorted(bound) == sorted(chain_settings), "every effect setting has one plug-in control"
    assert all(len(params) == 1 for params in bound.values()), bound


def test_plugin_menus_offer_the_settings_choices():
    rows = {row["name"]: row for row in describe()}
    multieq, _, fdnreverb = PLUGINS
    for i in range(6):
        param = multieq.param(f"filterType{i}")
        shown = {param.display(k) for k in range(param.steps)}
        # The notes' display texts per type; band 1 is high-pass or low shelf, band 6 low-pass or high shelf.
        texts = {
            "highpass1": "HP (6dB/oct)",
            "highpass2": "HP (12dB/oct)",
            "highpass_lr": "HP (24dB/oct)",
            "low_shelf": "Low-shelf",
            "peak": "Peak",
            "high_shelf": "High-shelf",
            "lowpass1": "LP (6dB/Oct)",
            "lowpass2": "LP (12dB/oct)",
            "lowpass_lr": "LP (24dB/oct)",
        }
        assert shown == {texts[name] for name in rows[f"eq.bands[{i}].type"]["choices"]}, i
    size = fdnreverb.param("fdnSize")
    assert [size.display(k) for k in range(size.steps)] == [str(n) for n in rows["reverb.fdn_lines"]["choices"]]


def test_state_values_follow_the_settings():
    files = export_files(on_grid_settings(), ["iem"])
    eq = dict(xml_params(files["MultiEQ.xml"].decode())[1])
    comp = dict(xml_params(files["OmniCompressor.xml"].decode())[1])
    rev = dict(xml_params(files["FdnReverb.xml"].decode())[1])
    # v1.14 filter type values: band 1 as v1.15, bands 2-5 from 0 (LS, Peak, HS), band 6 LP1, LP2, LR, HS.
    assert [eq[f"filterType{i}"] for i in range(6)] == ["2.0", "0.0", "1.0", "2.0", "1.0", "1.0"]
    assert [eq[f"filterEnabled{i}"] for i in range(6)] == ["1.0", "1.0", "1.0", "1.0", "0.0", "1.0"]
    assert eq["filterFrequency2"] == "2500.0" and eq["filterFrequency0"] == "85.0"
    assert float(eq["filterQ2"]) == pytest.approx(1.4, abs=1e-6)
    assert float(eq["filterGain2"]) == pytest.approx(-4.5, abs=1e-6)
    # JUCE's snapping works in float32: -50 + 0.1f * 317 is -18.29999923706055, not float32(-18.3).
    assert comp["threshold"] == "-18.29999923706055"
    assert comp["ratio"] == "3.200000047683716" and comp["lookAhead"] == "1.0"
    assert float(comp["attack"]) == pytest.approx(12.5) and float(comp["outGain"]) == pytest.approx(4.2, abs=1e-6)
    assert float(rev["dryWet"]) == pytest.approx(0.23, abs=1e-7), "the plug-in stores dry/wet as a fraction"
    assert rev["fdnSize"] == "1.0" and rev["delayLength"] == "12.0"
    assert float(rev["revTime"]) == pytest.approx(1.4, abs=1e-6)


def test_juce_number_printing():
    assert juce_double_text(0.0) == "0.0"
    assert juce_double_text(-10.0) == "-10.0"
    assert juce_double_text(20000.0) == "20000.0"
    assert juce_double_text(0.5) == "0.5"
    assert juce_double_text(float(np.float32(0.1))) == "0.1000000014901161"
    assert juce_double_text(123.456) == "123.456"
    assert juce_double_text(1e-7) == "1.0e-7"
    assert juce_double_text(2.5e6) == "2.5e6"
    assert juce_double_text(-1.25e-8) == "-1.25e-8"


# -- blob and .vstpreset layout -----------------------------------------------------------------
@pytest.mark.parametrize("plugin", list(NOTES_PARAMS))
def test_state_blob_layout(plugin):
    files = export_files(on_grid_settings(), ["iem"])
    xml_bytes, blob = files[f"{plugin}.xml"], files[f"{plugin}.bin"]
    assert blob[:4] == b"VC2!" and struct.unpack("<I", blob[:4])[0] == 0x21324356
    (length,) = struct.unpack("<I", blob[4:8])
    assert length == len(xml_bytes) and len(blob) == 8 + length + 1
    assert blob[8 : 8 + length] == xml_bytes and blob[-1:] == b"\0"


@pytest.mark.parametrize("plugin", list(NOTES_PARAMS))
def test_vstpreset_layout(plugin):
    files = export_files(on_grid_settings(), ["iem", "vstpreset"])
    data, blob = files[f"{plugin}.vstpreset"], files[f"{plugin}.bin"]
    assert data[:4] == b"VST3"
    assert struct.unpack("<i", data[4:8])[0] == 1
    assert data[8:40].decode("ascii") == CLASS_IDS[plugin]
    (list_offset,) = struct.unpack("<q", data[40:48])
    assert list_offset == 48 + len(blob)
    assert data[48:list_offset] == blob, "the component state is the plug-in's state blob"
    assert data[list_offset : list_offset + 4] == b"List"
    assert struct.unpack("<i", data[list_offset + 4 : list_offset + 8])[0] == 1
    entry = data[list_offset + 8 :]
    assert entry[:4] == b"Comp" and struct.unpack("<qq", entry[4:20]) == (48, len(blob))
    assert len(entry) == 20, "nothing after the chunk list"


def test_class_ids_follow_juce_rule():
    for plugin in PLUGINS:
        assert plugin.class_id == CLASS_IDS[plugin.name]


# -- round trip ---------------------------------------------------------------------------------
def test_export_import_export_is_byte_identical(tmp_path, warnings_log):
    first = tmp_path / "first"
    written = export_settings(off_grid_settings(), first)
    assert sorted(p.name for p in written) == ALL_FILES
    assert sorted(read_dir(first)) == ALL_FILES, "no temporary files left behind"
    warnings_log.clear()
    imported = import_settings(first)
    assert not warnings_log.records, "an export reads back without warnings"
    second = tmp_path / "second"
    export_settings(imported, second)
    assert read_dir(first) == read_dir(second)
    # Snapped to the grids, everything else as it was.
    assert imported.eq.bands[2].frequency_hz == 2500.0 and imported.eq.bands[2].q == 1.4
    assert imported.eq.bands[2].gain_db == -4.5 and imported.compressor.ratio == 2.6
    assert imported.compressor.threshold_db == -18.3 and imported.reverb.dry_wet_pct == 16.0
    assert imported.reverb.reverb_time_s == 1.4
    assert imported.level.vocal_gain_db == -2.75 and imported.output.target_loudness_lufs == -14.0


def test_on_grid_settings_survive_exactly(tmp_path):
    settings = on_grid_settings()
    export_settings(settings, tmp_path)
    assert import_settings(tmp_path) == settings


@pytest.mark.parametrize("suffix", [".xml", ".bin", ".vstpreset"])
def test_each_state_form_imports_alone(tmp_path, suffix):
    settings = on_grid_settings()
    export_settings(settings, tmp_path, formats=["iem", "vstpreset"])
    imported = import_settings([tmp_path / f"{p}{suffix}" for p in NOTES_PARAMS])
    defaults = MixSettings()
    # The plug-in states hold the whole chain but no fader or output stage: those keep the defaults.
    assert imported.eq == settings.eq and imported.compressor == settings.compressor
    assert imported.reverb == settings.reverb
    assert imported.level == defaults.level and imported.output == defaults.output


def test_import_names_the_settings_taken_from_defaults(tmp_path, warnings_log):
    settings = on_grid_settings()
    export_settings(settings, tmp_path, formats=["iem", "vstpreset"])
    import_settings([tmp_path / f"{p}.vstpreset" for p in NOTES_PARAMS])
    (warning,) = [r.getMessage() for r in warnings_log.records]
    # No plug-in preset holds the vocal fader or the output stage; the user is told, and how to decide the level.
    assert "level.vocal_gain_db" in warning and "output.*" in warning and "--relevel" in warning
    assert "compressor" not in warning and "reverb" not in warning and "eq." not in warning
    warnings_log.clear()
    import_settings(tmp_path / "OmniCompressor.xml")
    (warning,) = [r.getMessage() for r in warnings_log.records]
    assert "reverb.*" in warning and "eq.bands[3].*" in warning and "compressor" not in warning


def test_one_plugin_state_leaves_the_rest_at_defaults(tmp_path):
    settings = on_grid_settings()
    export_settings(settings, tmp_path, formats=["iem"])
    imported = import_settings(tmp_path / "OmniCompressor.xml")
    assert imported.compressor == settings.compressor
    assert imported.eq == MixSettings().eq and imported.reverb == MixSettings().reverb


def test_renders_of_original_and_imported_settings_are_identical(tmp_path):
    mixing = pytest.importorskip("vocalmix.mixing", reason="the renderer (vocalmix.mixing) is not available")
    if not hasattr(mixing, "render_mix"):
        pytest.skip("vocalmix.mixing.render_mix is not available yet")
    settings = on_grid_settings()
    export_settings(settings, tmp_path)
    imported = import_settings(tmp_path)
    rng = np.random.default_rng(6)
    rate = 44100
    t = np.arange(rate) / rate
    vocal = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + rng.normal(0, 0.05, t.size)))[None].astype(np.float32)
    backing = rng.normal(0, 0.05, (2, rate)).astype(np.float32)
    a = mixing.render_mix(vocal, backing, rate, settings)
    b = mixing.render_mix(vocal, backing, rate, imported)
    assert np.array_equal(a.mix, b.mix) and np.array_equal(a.vocal, b.vocal)


# -- snapping warnings --------------------------------------------------------------------------
def test_off_grid_values_are_snapped_with_a_warning_naming_the_setting(tmp_path, warnings_log):
    export_settings(off_grid_settings(), tmp_path)
    messages = [r.getMessage() for r in warnings_log.records]
    expected = {
        "eq.bands[2].frequency_hz": "exported as 2500 Hz",
        "eq.bands[2].q": "exported as 1.4",
        "eq.bands[2].gain_db": "exported as -4.5 dB",
        "compressor.ratio": "exported as 2.6",
        "compressor.threshold_db": "exported as -18.3 dB",
        "reverb.dry_wet_pct": "exported as 16 %",
        "reverb.reverb_time_s": "exported as 1.4 s",
    }
    for setting, outcome in expected.items():
        hits = [m for m in messages if f"'{setting}'" in m]
        assert len(hits) == 1, (setting, messages)
        assert outcome in hits[0] and "grid" in hits[0]
    assert len(messages) == len(expected), messages


def test_on_grid_settings_export_silently(tmp_path, warnings_log):
    export_settings(on_grid_settings(), tmp_path / "a")
    export_settings(MixSettings(), tmp_path / "b")
    assert not warnings_log.records


def test_v115_only_values_and_rev_time_quirk_warn(tmp_path, warnings_log):
    s = on_grid_settings()
    s.reverb.fdn_lines = 256
    s.reverb.reverb_time_s = 5.0
    export_settings(s, tmp_path)
    text = " | ".join(r.getMessage() for r in warnings_log.records)
    assert "'reverb.fdn_lines'" in text and "v1.15" in text
    assert "'reverb.reverb_time_s'" in text and "away and back" in text
    assert dict(xml_params((tmp_path / "FdnReverb.xml").read_text())[1])["fdnSize"] == "4.0"
    assert import_settings(tmp_path).reverb.fdn_lines == 256
    assert "this step is required" in (tmp_path / "mix_sheet.md").read_text()


def test_linkwitz_riley_q_warns_that_v115_ignores_it(tmp_path, warnings_log):
    s = on_grid_settings()
    s.eq.bands[0].q = 1.2
    export_settings(s, tmp_path, formats=["iem"])
    messages = [r.getMessage() for r in warnings_log.records]
    assert len(messages) == 1 and "'eq.bands[0].q'" in messages[0] and "v1.15" in messages[0]


# -- import of states written elsewhere ---------------------------------------------------------
def _state(plugin: str, params: dict[str, str]) -> str:
    inner = "".join(f'<PARAM id="{k}" value="{v}"/>' for k, v in params.items())
    return f'{XML_HEADER}<{plugin}>{inner}<OSCConfig ReceiverPort="-1"/></{plugin}>'


def test_v115_filter_type_values_are_understood(tmp_path):
    path = tmp_path / "eq.xml"
    # v1.15 stores bands 2-5 as 3..5 and band 6 as 5..8.
    path.write_text(
        _state(
            "MultiEQ",
            {
                "filterType0": "3.0",
                "filterType1": "5.0",
                "filterType2": "4.0",
                "filterType3": "3.0",
                "filterType4": "4.0",
                "filterType5": "8.0",
            },
        )
    )
    bands = import_settings(path).eq.bands
    assert [b.type for b in bands] == ["low_shelf", "high_shelf", "peak", "low_shelf", "peak", "lowpass_lr"]
    path.write_text(_state("MultiEQ", {"filterType1": "1.0", "filterType5": "3.0"}))
    bands = import_settings(path).eq.bands
    assert bands[1].type == "peak" and bands[5].type == "high_shelf"


def test_hand_edited_values_are_snapped_and_clamped_with_warnings(tmp_path, warnings_log):
    path = tmp_path / "comp.xml"
    path.write_text(
        _state("OmniCompressor", {"threshold": "-12.34", "ratio": "40", "attack": "5.0", "someFutureParam": "3"})
    )
    imported = import_settings(path)
    assert imported.compressor.threshold_db == -12.3 and imported.compressor.ratio == 16.0
    assert imported.compressor.attack_ms == 5.0
    messages = [r.getMessage() for r in warnings_log.records if "keep their defaults" not in r.getMessage()]
    assert len(messages) == 2
    assert any("comp.xml" in m and "'threshold'" in m and "grid" in m for m in messages)
    assert any("comp.xml" in m and "'ratio'" in m and "outside" in m for m in messages)


def test_state_with_juce_trailer_and_float_noise_imports(tmp_path, warnings_log):
    files = export_files(on_grid_settings(), ["iem"])
    # A host's VST3 component state: the blob plus JUCE's private-data trailer.
    trailer = struct.pack("<q", 0) + b"JUCEPrivateData\0" + struct.pack("<q", 16) + b"JUCEPrivateData"
    (tmp_path / "rev.bin").write_bytes(files["FdnReverb.bin"] + trailer)
    assert import_settings(tmp_path / "rev.bin").reverb == on_grid_settings().reverb
    # Only the note that the other plug-ins' settings keep their defaults; nothing about the state itself.
    assert [r.getMessage() for r in warnings_log.records if "keep their defaults" not in r.getMessage()] == []


def test_unsupported_reverb_controls_warn_on_import(tmp_path, warnings_log):
    path = tmp_path / "rev.xml"
    path.write_text(_state("FdnReverb", {"hpOrder": "2.0", "freeze": "1.0", "revTime": "2.0"}))
    assert import_settings(path).reverb.reverb_time_s == 2.0
    messages = " | ".join(r.getMessage() for r in warnings_log.records)
    assert "'hpOrder'" in messages and "'freeze'" in messages


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("a.bin", b"VC2!" + struct.pack("<I", 500) + b"<MultiEQ/>", "truncated"),
        ("b.bin", b"VC2!" + struct.pack("<I", 0), "empty"),
        ("c.xml", b"<MultiEQ><PARAM id='filterQ0' value='0.7'>", "not well-formed XML"),
        ("d.xml", _state("Compressor3000", {"x": "1"}).encode(), "Compressor3000"),
        ("e.xml", _state("MultiEQ", {"filterQ0": "abc"}).encode(), "not a number"),
        ("f.xml", _state("MultiEQ", {"filterQ0": "nan"}).encode(), "not a finite number"),
        ("g.xml", b'<MultiEQ><PARAM id="filterQ0"/></MultiEQ>', "lacks"),
        ("h.wav", b"RIFF\x00\x00\x00\x00WAVEfmt ", "not an IEM plug-in state"),
        ("i.json", b'{"schema_version": 1}', "not a vocal_chain.json"),
        ("j.json", b"{nope", "not valid JSON"),
        ("k.bin", b"\xff\xfe\x00\x01garbage", "not an IEM plug-in state"),
    ],
)
def test_malformed_files_raise_one_line_errors_naming_the_file(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        import_settings(path)
    message = str(err.value)
    assert str(path) in message and fragment in message and "\n" not in message


def test_malformed_vstpresets(tmp_path):
    good = export_files(on_grid_settings(), ["vstpreset"])["MultiEQ.vstpreset"]
    cases = {
        "other.vstpreset": good[:8] + b"0" * 32 + good[40:],  # another plug-in's class ID
        "cut.vstpreset": good[:60],  # list offset beyond the end
        "nolist.vstpreset": good[:-28] + b"XXXX" + good[-24:],
        "badchunk.vstpreset": good[:-16] + struct.pack("<qq", 48, 10**6),
        "nocomp.vstpreset": good[:-20] + b"Cont" + good[-16:],
        "mismatch.vstpreset": good[:8] + CLASS_IDS["FdnReverb"].encode() + good[40:],
    }
    fragments = {
        "other": "another plug-in",
        "cut": "outside the file",
        "nolist": "'List'",
        "badchunk": "outside the data area",
        "nocomp": "no component state",
        "mismatch": "class ID is FdnReverb's",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputError, match=fragments[name.split(".")[0]]) as err:
            import_settings(path)
        assert str(path) in str(err.value)


def test_missing_paths_and_conflicting_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        import_settings(tmp_path / "nope.xml")
    with pytest.raises(InputError, match="no plug-in states"):
        import_settings(tmp_path)
    with pytest.raises(InputError, match="no files"):
        import_settings([])
    a, b = tmp_path / "a", tmp_path / "b"
    export_settings(on_grid_settings(), a, formats=["iem"])
    other = on_grid_settings()
    other.compressor.knee_db = 9.0
    export_settings(other, b, formats=["iem"])
    with pytest.raises(InputError, match="compressor.knee_db") as err:
        import_settings([a / "OmniCompressor.xml", b / "OmniCompressor.bin"])
    assert "OmniCompressor.xml" in str(err.value) and "OmniCompressor.bin" in str(err.value)


# -- writing ------------------------------------------------------------------------------------
def test_refuses_to_overwrite_unless_forced(tmp_path):
    export_settings(MixSettings(), tmp_path, formats=["sheet"])
    before = (tmp_path / "mix_sheet.md").read_bytes()
    with pytest.raises(InputError, match="already exists"):
        export_settings(on_grid_settings(), tmp_path)
    assert sorted(read_dir(tmp_path)) == ["mix_sheet.md"], "nothing written when one file is refused"
    assert (tmp_path / "mix_sheet.md").read_bytes() == before
    written = export_settings(on_grid_settings(), tmp_path, force=True)
    assert len(written) == len(ALL_FILES) and (tmp_path / "mix_sheet.md").read_bytes() != before


def test_format_selection(tmp_path):
    for formats in (["all"], ["iem"], ["sheet", "pedalboard"]):
        assert [p.name for p in export_paths(tmp_path, formats)] == [
            p.name for p in export_settings(MixSettings(), tmp_path / formats[0], formats=formats)
        ]
    written = export_settings(MixSettings(), tmp_path, formats=["vstpreset,sheet"])
    assert sorted(p.name for p in written) == sorted(
        ["MultiEQ.vstpreset", "OmniCompressor.vstpreset", "FdnReverb.vstpreset", "mix_sheet.md"]
    )
    with pytest.raises(InputError, match="unknown export format 'fxp'"):
        export_settings(MixSettings(), tmp_path / "x", formats=["fxp"])
    assert set(FORMATS) == {"iem", "vstpreset", "pedalboard", "sheet"}


def test_invalid_settings_are_refused(tmp_path):
    s = MixSettings()
    s.eq.bands[2].q = 20.0
    with pytest.raises(InputError, match=r"eq.bands\[2\].q"):
        export_settings(s, tmp_path)


# -- the sheet ----------------------------------------------------------------------------------
def test_sheet_lists_the_chain_in_order_with_units(tmp_path):
    export_settings(on_grid_settings(), tmp_path, formats=["sheet"])
    sheet = (tmp_path / "mix_sheet.md").read_text()
    order = [
        sheet.index(h)
        for h in ("## 1. MultiEQ", "## 2. OmniCompressor", "## 3. FdnReverb", "## 4. Vocal fader", "## 5. Output stage")
    ]
    assert order == sorted(order)
    for fragment in (
        "| 3 | ON | Peak | 2500 Hz | 1.40 | -4.5 dB |",
        "| 1 | ON | HP (24dB/oct) | 85 Hz | 0.70 |",
        "| 6 | ON | LP (12dB/oct) | 15000 Hz |",
        "| Threshold | -18.3 dB |",
        "| Ratio | 3.2 : 1 |",
        "| Attack Time | 12.5 ms |",
        "| LookAhead | ON (5ms) |",
        "| Reverberation Time | 1.4 s |",
        "| Dry/Wet | 0.23 (23 % wet) |",
        "| Lows Gain | -2.5 dB/s |",
        "| Fdn Size (internal) | 32 |",
        "**-2.75 dB**",
        "-14 LUFS",
        "Reverberation Time quirk",
        "mono",
    ):
        assert fragment in sheet, fragment


# -- pedalboard ---------------------------------------------------------------------------------
def test_pedalboard_names_follow_pedalboard():
    normalise = pytest.importorskip("pedalboard._pedalboard").normalize_python_parameter_name
    for plugin in PLUGINS:
        for param in plugin.params:
            full = f"{param.name} {param.label}" if param.label else param.name
            assert pedalboard_name(param) == normalise(full), param.id
            assert python_parameter_name(param.name) == normalise(param.name)
    names = {p.id: pedalboard_name(p) for p in PLUGINS[0].params + PLUGINS[1].params + PLUGINS[2].params}
    assert names["filterFrequency0"] == "filter_frequency_1_hz" and names["filterGain5"] == "filter_gain_6_db"
    assert names["ratio"] == "ratio_1" and names["lowGain"] == "lows_gain_db_s"
    assert names["inputChannelsSetting"] == "number_of_input_channels"


def _load_script(path: Path):
    spec = importlib.util.spec_from_file_location("vocal_chain_pedalboard", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_embeds_the_chain_json(tmp_path):
    export_settings(on_grid_settings(), tmp_path, formats=["pedalboard"])
    pytest.importorskip("pedalboard")
    script = _load_script(tmp_path / "vocal_chain_pedalboard.py")
    chain = json.loads((tmp_path / "vocal_chain.json").read_text())
    assert script.CHAIN == chain
    assert chain["vocal_gain_db"] == -2.75 and [s["channels"] for s in chain["chain"]] == [1, 1, 2]
    reverb = chain["chain"][2]
    assert reverb["tail_s"] > 1.4
    for stage, plugin in zip(chain["chain"], PLUGINS):
        assert stage["vst3_class_id"] == CLASS_IDS[plugin.name]
        assert [p["id"] for p in stage["parameters"]] == [p.id for p in plugin.params]


class FakeParameter:
    """What the script touches of a pedalboard parameter, over a plug-in range (start, end, step, skew)."""

    def __init__(self, start, end, step, skew, show, default):
        self.start, self.end, self.step, self.skew, self.show = start, end, step, skew, show
        self.raw_value = ((default - start) / (end - start)) ** skew

    @property
    def num_steps(self):
        return int(round((self.end - self.start) / self.step)) + 1

    def plain(self, raw=None):
        raw = self.raw_value if raw is None else raw
        value = self.start + (self.end - self.start) * raw ** (1 / self.skew)
        return self.start + self.step * math.floor((value - self.start) / self.step + 0.5)

    def get_text_for_raw_value(self, raw):
        return self.show(self.plain(raw))

    @property
    def string_value(self):
        return self.get_text_for_raw_value(self.raw_value)


class FakePlugin:
    def __init__(self, parameters):
        self.parameters = parameters
        self.calls = []

    def process(self, audio, sample_rate, reset=True):
        self.calls.append((audio.shape, {n: p.plain() for n, p in self.parameters.items()}))
        return np.array(audio, copy=True)


def _fake_plugins(version: str) -> dict[str, FakePlugin]:
    """Fake IEM plug-ins of version "1.14" or "1.15", named as pedalboard names them."""
    normalise = pytest.importorskip("pedalboard._pedalboard").normalize_python_parameter_name
    v115_types = {
        1: ("Low-shelf", "Peak", "High-shelf"),
        5: ("High-shelf", "LP (6dB/Oct)", "LP (12dB/oct)", "LP (24dB/oct)"),
    }
    fakes = {}
    for plugin in PLUGINS:
        params = {}
        for p in plugin.params:
            if version == "1.14" and p.since == "1.15":
                continue
            start, end, show = p.start, p.end, p.display
            if version == "1.15" and p.id.startswith("filterType") and p.id != "filterType0":
                texts = v115_types[5 if p.id == "filterType5" else 1]
                start = 5 if p.id == "filterType5" else 3
                end = start + len(texts) - 1
                show = (lambda t, s: lambda v: t[int(round(v)) - s])(texts, start)
            if version == "1.14" and p.id == "fdnSize":
                end = 2
            full = f"{p.name} {p.label}" if p.label else p.name
            params[normalise(full)] = FakeParameter(
                start, end, p.interval, p.skew, show or (lambda v: ""), p.default if p.default <= end else end
            )
        fakes[plugin.name] = FakePlugin(params)
    return fakes


@pytest.mark.parametrize("version", ["1.14", "1.15"])
def test_script_drives_the_plugins_by_name(tmp_path, monkeypatch, capsys, version):
    pedalboard = pytest.importorskip("pedalboard")
    import soundfile as sf

    settings = on_grid_settings()
    out_dir = tmp_path / "export"
    export_settings(settings, out_dir, formats=["pedalboard", "iem"])
    script = _load_script(out_dir / "vocal_chain_pedalboard.py")
    plugin_dir = tmp_path / "vst3" / "IEM"
    for plugin in PLUGINS:
        (plugin_dir / f"{plugin.name}.vst3").mkdir(parents=True)
    fakes = _fake_plugins(version)
    monkeypatch.setattr(pedalboard, "load_plugin", lambda path, **kw: fakes[Path(path).stem])
    rate = 48000
    vocal = np.random.default_rng(1).normal(0, 0.1, (rate // 2, 2)).astype(np.float32)
    sf.write(tmp_path / "vocal.wav", vocal, rate, subtype="FLOAT")
    assert script.main([str(tmp_path / "vocal.wav"), str(tmp_path / "out.wav"), str(tmp_path / "vst3")]) == 0
    assert "warning" not in capsys.readouterr().out, "every control shows the expected text"

    # Every parameter the plug-in has ends at the exported plain value (v1.15 menus by their own values).
    chain = json.loads((out_dir / "vocal_chain.json").read_text())
    for stage in chain["chain"]:
        fake = fakes[stage["plugin"]]
        final = fake.calls[-1][1]
        for param in stage["parameters"]:
            name = param["pedalboard_name"]
            if name not in fake.parameters:
                assert version == "1.14" and param.get("since_version") == "1.15"
                continue
            assert fake.parameters[name].string_value == (param["display"] or fake.parameters[name].string_value)
            if not param.get("select_by_text"):
                assert final[name] == pytest.approx(param["value"], abs=1e-6), (stage["plugin"], name)
    assert [c[0][0] for c in fakes["MultiEQ"].calls] == [1], "the EQ gets the mono vocal"
    assert [c[0][0] for c in fakes["OmniCompressor"].calls] == [1], "the compressor gets the mono vocal"
    reverb_calls = fakes["FdnReverb"].calls
    assert [c[0][0] for c in reverb_calls] == [2, 2], "a silent nudge, then the stereo render"
    assert reverb_calls[0][1]["reverberation_time_s"] != pytest.approx(1.4)
    assert reverb_calls[1][1]["reverberation_time_s"] == pytest.approx(1.4)

    out, out_rate = sf.read(tmp_path / "out.wav", always_2d=True)
    tail = int(round(chain["chain"][2]["tail_s"] * rate))
    assert out_rate == rate and out.shape == (rate // 2 + tail, 2)
    expected = vocal.mean(axis=1) * 10 ** (-2.75 / 20)
    assert np.allclose(out[: rate // 2, 0], expected, atol=1e-6) and np.allclose(out[:, 0], out[:, 1])
    assert not out[rate // 2 :].any()


@pytest.mark.parametrize("folder", ["missing", "file", "bad_bundle"])
def test_script_reports_a_bad_plugin_folder_in_one_line(tmp_path, folder):
    import subprocess
    import sys

    import soundfile as sf

    export_settings(on_grid_settings(), tmp_path, formats=["pedalboard"])
    sf.write(tmp_path / "vocal.wav", np.zeros(4800, dtype=np.float32), 48000)
    plugins = tmp_path / "plugins"
    if folder == "file":
        plugins.write_text("not a folder")
    elif folder == "bad_bundle":  # a folder that holds something named like the plug-in, but no plug-in
        plugins.mkdir()
        for plugin in PLUGINS:
            (plugins / f"{plugin.name}.vst3").write_text("not a VST3 bundle")
    run = subprocess.run(
        [
            sys.executable,
            str(tmp_path / SCRIPT_FILE),
            str(tmp_path / "vocal.wav"),
            str(tmp_path / "out.wav"),
            str(plugins),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in run.stderr, run.stderr
    assert str(plugins) in lines[0] or "pedalboard" in lines[0]


def test_quiet_snapping_does_not_touch_the_logger(warnings_log):
    settings = off_grid_settings()
    logger = logging.getLogger("vocalmix")
    states = plugin_states(settings, warn=False)
    assert not warnings_log.records and not logger.disabled
    assert [s.values for s in states] == [s.values for s in plugin_states(settings)]
    assert warnings_log.records, "the default still warns about every snapped value"
    warnings_log.clear()
    snap_to_plugin_grids(settings)
    assert not warnings_log.records and not logger.disabled


def test_refused_export_prints_its_snapping_warnings_once(tmp_path, capsys):
    from vocalmix.cli import main

    settings_path = tmp_path / "off.settings.json"
    settings_path.write_text(off_grid_settings().to_json(method="test", report={}))
    assert main(["export", str(settings_path), "--to", str(tmp_path / "out")]) == 0
    first = capsys.readouterr().err
    assert "not on" in first  # the snapping warnings, once
    assert main(["export", str(settings_path), "--to", str(tmp_path / "out")]) == 2
    again = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(again) == 1 and "already exists" in again[0]


# -- command-line functions ---------------------------------------------------------------------
def test_cli_export_and_import(tmp_path):
    from vocalmix.cli import main

    settings_path = tmp_path / "mix.settings.json"
    settings_path.write_text(on_grid_settings().to_json(method="rules", report={}))
    out = tmp_path / "presets"
    assert main(["export", str(settings_path), "--to", str(out), "--format", "iem", "-f", "sheet"]) == 0
    assert sorted(read_dir(out)) == sorted(f"{p}{e}" for p in NOTES_PARAMS for e in (".xml", ".bin")) + ["mix_sheet.md"]
    assert main(["export", str(settings_path), "--to", str(out)]) == 2, "existing files are refused"
    assert main(["export", str(settings_path), "--to", str(out), "--force"]) == 0
    imported = tmp_path / "imported.json"
    assert main(["import", str(out), "-o", str(imported)]) == 0
    doc = json.loads(imported.read_text())
    assert doc["method"] == "import" and doc["report"]["imported_from"]
    assert MixSettings.from_json(imported.read_text(), source=str(imported)) == on_grid_settings()
    assert main(["import", str(out), "-o", str(imported)]) == 2, "refuses to overwrite"
    assert main(["import", str(out / "MultiEQ.xml"), "-o", str(out / "MultiEQ.xml"), "--force"]) == 2
    assert main(["export", str(tmp_path / "missing.json"), "--to", str(out)]) == 2
    assert main(["export", str(settings_path), "--to", str(tmp_path / "y"), "--format", "wav"]) == 2


def test_cli_errors_are_one_line(tmp_path, capsys):
    from vocalmix.cli import main

    bad = tmp_path / "bad.vstpreset"
    bad.write_bytes(b"VST3" + b"\0" * 10)
    assert main(["import", str(bad), "-o", str(tmp_path / "s.json")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and str(bad) in err[0]
