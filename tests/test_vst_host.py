"""The ctypes VST2 host (vocalmix.vst_host) and the plug-in lookup of vocalmix.iem_engine.

Errors for files we are given and arguments we pass are checked everywhere; tests
that need a real plug-in skip, with the reason, where iem-plugin-suite-vst is not
installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from vocalmix import cli, iem_engine
from vocalmix.plugins import PLUGINS_BY_NAME, plugin_states
from vocalmix.settings import MixSettings
from vocalmix.vst_host import VstError, VstPlugin

REASON = iem_engine.plugins_available()
needs_plugins = pytest.mark.skipif(REASON is not None, reason=f"real IEM plug-ins needed: {REASON}")


# -- files that are not plug-ins ------------------------------------------------------------------
def test_missing_file_is_named(tmp_path):
    with pytest.raises(VstError, match="missing.so: plug-in file not found"):
        VstPlugin(tmp_path / "missing.so")


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(VstError, match="not a file"):
        VstPlugin(tmp_path)


def test_a_file_that_is_not_a_library_is_refused(tmp_path):
    fake = tmp_path / "libFake.so"
    fake.write_text("not an ELF file\n")
    with pytest.raises(VstError, match=r"libFake.so: not a loadable plug-in library"):
        VstPlugin(fake)


def test_a_library_without_the_vst_entry_point_is_refused():
    from pathlib import Path

    # numpy's compiled core: a shared library that is certainly not a plug-in.
    library = next(Path(np.__file__).parent.rglob("_multiarray_umath*.so"))
    with pytest.raises(VstError, match="not a VST2 plug-in \\(no VSTPluginMain entry point\\)"):
        VstPlugin(library)


@pytest.mark.parametrize("rate, block", [(0, 512), (float("nan"), 512), (44100, 0), (44100, 1.5), (44100, True)])
def test_bad_rate_or_block_size_is_refused_before_loading(tmp_path, rate, block):
    fake = tmp_path / "lib.so"
    fake.write_bytes(b"\0")
    with pytest.raises(VstError, match="sample rate|block size"):
        VstPlugin(fake, rate, block)


# -- finding the plug-ins -------------------------------------------------------------------------
def test_missing_plugins_name_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv(iem_engine.DIR_VARIABLE, str(tmp_path))
    with pytest.raises(iem_engine.PluginsNotInstalled, match="install the package iem-plugin-suite-vst"):
        iem_engine.find_plugin_dir()
    assert "iem-plugin-suite-vst" in iem_engine.plugins_available()


def test_render_and_verify_without_plugins_fail_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(iem_engine.DIR_VARIABLE, str(tmp_path))
    vocal, backing = tmp_path / "v.wav", tmp_path / "b.wav"
    import soundfile as sf

    for path in (vocal, backing):
        sf.write(path, np.zeros(44100 * 4), 44100)
    assert cli.main(["render", str(vocal), str(backing), "-o", str(tmp_path / "mix.wav"), "--engine", "iem"]) == 2
    assert cli.main(["verify", str(tmp_path), str(vocal)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all("install the package iem-plugin-suite-vst" in line for line in lines)
    assert not (tmp_path / "mix.wav").exists()


def test_unknown_engine_is_refused(tmp_path, capsys):
    code = cli.main(["render", "v.wav", "b.wav", "-o", str(tmp_path / "m.wav"), "--engine", "juce"])
    assert code == 2 and "--engine 'juce': choose 'dsp' or 'iem'" in capsys.readouterr().err


# -- the real plug-ins ----------------------------------------------------------------------------
@pytest.fixture
def multieq():
    with iem_engine.open_plugin("MultiEQ", 44100, 256) as plugin:
        yield plugin


@needs_plugins
@pytest.mark.parametrize("name", iem_engine.PLUGIN_NAMES)
def test_parameters_are_what_the_export_tables_say(name):
    """Names, labels and order of the v1.14 parameters equal vocalmix's tables (the v1.15-only ones aside)."""
    with iem_engine.open_plugin(name, 44100) as plugin:
        assert plugin.unique_id == PLUGINS_BY_NAME[name].code
        assert plugin.num_inputs == plugin.num_outputs == 64
        shown = [(p.name, p.label) for p in plugin.parameters()]
        assert all(0.0 <= p.value <= 1.0 for p in plugin.parameters())
    expected = [(p.name.strip(), p.label.strip()) for p in PLUGINS_BY_NAME[name].params if p.since == "1.14"]
    assert sorted(shown) == sorted(expected)


@needs_plugins
def test_set_parameter_shows_the_display_text_export_predicts(multieq):
    param = PLUGINS_BY_NAME["MultiEQ"].param("filterFrequency2")
    index = multieq.parameter_index(param.name)
    multieq.set_parameter(index, param.normalised(1234.0))
    assert multieq.parameter_display(index) == param.display(1234.0) == "1234"
    assert multieq.get_parameter(index) == pytest.approx(param.normalised(1234.0), abs=1e-6)


@needs_plugins
def test_chunk_round_trip_and_defaults(multieq):
    blob = plugin_states(MixSettings())[0].blob()
    multieq.set_chunk(blob)
    assert multieq.get_chunk() == blob
    assert multieq.latency == 0


@needs_plugins
def test_block_size_does_not_change_a_static_filter():
    x = np.random.default_rng(0).standard_normal((1, 5000)).astype(np.float32) * 0.1
    blob = plugin_states(MixSettings())[0].blob()
    outputs = []
    for block in (64, 1000, 4096):
        with iem_engine.open_plugin("MultiEQ", 44100, block) as plugin:
            plugin.set_chunk(blob)
            outputs.append(plugin.process(x))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])


@needs_plugins
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p: p.get_parameter(-1), "parameter index -1 is outside"),
        (lambda p: p.get_parameter(31), "parameter index 31 is outside"),
        (lambda p: p.parameter_name(2.0), "must be a whole number"),
        (lambda p: p.set_parameter(1, 1.5), "outside 0..1"),
        (lambda p: p.set_parameter(1, float("nan")), "outside 0..1"),
        (lambda p: p.set_chunk(b""), "non-empty bytes"),
        (lambda p: p.process(np.zeros(10, np.float32)), "must be \\(channels, samples\\)"),
        (lambda p: p.process(np.zeros((65, 10), np.float32)), "65 channels but the plug-in has 64 inputs"),
        (lambda p: p.process(np.zeros((1, 10), np.int16)), "must be floating point"),
        (lambda p: p.process(np.full((1, 10), np.nan, np.float32)), "NaN or infinite"),
        (lambda p: p.process(np.zeros((1, 10), np.float32), outputs=0), "outputs must be 1..64"),
        (lambda p: p.process(np.zeros((1, 10), np.float32), outputs=65), "outputs must be 1..64"),
        (lambda p: p.parameter_index("No Such Knob"), "no parameter named"),
    ],
)
def test_bad_arguments_are_refused_before_calling_the_plugin(multieq, call, message):
    with pytest.raises(VstError, match=message):
        call(multieq)
    assert multieq.process(np.zeros((1, 8), np.float32)).shape == (1, 8)  # still alive


@needs_plugins
def test_closed_instance_refuses_calls():
    plugin = iem_engine.open_plugin("OmniCompressor", 44100)
    plugin.close()
    plugin.close()  # idempotent
    for call in (
        lambda: plugin.process(np.zeros((1, 8), np.float32)),
        lambda: plugin.get_chunk(),
        lambda: plugin.get_parameter(0),
        lambda: plugin.latency,
    ):
        with pytest.raises(VstError, match="closed"):
            call()
