"""The effects' parameter contract (vocalmix.dsp.params), built from settings in one place, and the
plug-in facts (band count, filter types, FDN sizes) written once for dsp and the settings schema."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from vocalmix import settings as S
from vocalmix.dsp import biquads, constants, eq, reverb
from vocalmix.dsp.chain import vocal_chain
from vocalmix.dsp.params import ChainParams, CompressorParams, EQParams, LevelParams, ReverbParams
from vocalmix.mixing import settings_to_params

SR = 44100


def random_settings(seed: int) -> S.MixSettings:
    """Every numeric setting drawn inside its range, flags and menus drawn too, so a swapped field shows."""
    rng = np.random.default_rng(seed)
    s = S.MixSettings()
    for i, band in enumerate(s.eq.bands):
        band.enabled = bool(rng.integers(2))
        band.type = str(rng.choice(S.BAND_FILTER_TYPES[i]))
    for section in (*s.eq.bands, s.compressor, s.reverb, s.level):
        for f in dataclasses.fields(section):
            spec = f.metadata.get("spec")
            if spec is not None:
                setattr(section, f.name, spec.denormalise(float(rng.uniform())))
    s.compressor.lookahead = bool(rng.integers(2))
    s.reverb.fdn_lines = 32
    return s.validate()


# -- one source for the plug-in facts ---------------------------------------------------------------


def test_plugin_facts_have_one_source():
    # The v1.15 MultiEQ enum (shared/notes/iem-plugins.md), written out as the settings files name it.
    v115 = {
        "highpass1": 0,
        "highpass2": 1,
        "highpass_lr": 2,
        "low_shelf": 3,
        "peak": 4,
        "high_shelf": 5,
        "lowpass1": 6,
        "lowpass2": 7,
        "lowpass_lr": 8,
    }
    assert S.FILTER_TYPES == v115
    assert {t.setting_name: int(t) for t in constants.FilterType} == v115
    assert biquads.FilterType is constants.FilterType
    assert all(name in S.FILTER_TYPES for types in S.BAND_FILTER_TYPES for name in types)
    # The same objects, not equal copies: there is nothing to keep in step.
    assert S.FDN_LINE_COUNTS is constants.FDN_LINE_COUNTS
    assert S.N_EQ_BANDS == constants.N_EQ_BANDS == len(S.MixSettings().eq.bands) == len(S.BAND_FILTER_TYPES)
    assert not hasattr(reverb, "FDN_SIZES") and not hasattr(eq, "N_BANDS")
    assert eq.default_settings()["frequency_hz"].shape == (1, constants.N_EQ_BANDS)
    for lines in constants.FDN_LINE_COUNTS:  # every size the schema offers, the reverb builds
        assert len(reverb.fdn_delay_lengths(10, lines, SR)) == lines
    with pytest.raises(ValueError, match="one of"):
        reverb.fdn_delay_lengths(10, 48, SR)


def test_settings_load_without_torch():
    code = "import sys, vocalmix.settings; print(sorted(m for m in ('torch', 'numpy', 'numba') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_dsp_package_names_resolve():
    import vocalmix.dsp as dsp
    from vocalmix.dsp.compressor import compressor

    assert sorted(dsp.__all__) == sorted(dsp._WHERE)
    for name in dsp.__all__:
        assert getattr(dsp, name) is not None
    assert dsp.vocal_chain is vocal_chain and dsp.ChainParams is ChainParams
    assert dsp.compressor.compressor is compressor  # the module, never shadowed by the function


# -- settings -> parameters ------------------------------------------------------------------------


def test_settings_to_params_carries_every_setting_under_its_name():
    settings = [random_settings(1), random_settings(2), random_settings(3)]
    p = settings_to_params(settings)
    assert p.batch_size == 3 and p.reverb.fdn_lines == 32
    renamed = {("reverb", "dry_wet_pct"): ("dry_wet", 0.01), ("eq", "type"): ("filter_type", None)}
    seen = set()
    for i, s in enumerate(settings):
        sections = {
            "compressor": (s.compressor, p.compressor),
            "reverb": (s.reverb, p.reverb),
            "level": (s.level, p.level),
        }
        for section, (values, params) in sections.items():
            for f in dataclasses.fields(values):
                if f.name == "fdn_lines":
                    continue
                name, scale = renamed.get((section, f.name), (f.name, 1.0))
                got = getattr(params, name)[i].item()
                expected = getattr(values, f.name) * scale
                assert got == pytest.approx(expected, rel=1e-6), f"{section}.{f.name}"
                seen.add(f"{section}.{name}")
        for b, band in enumerate(s.eq.bands):
            for f in dataclasses.fields(band):
                name, _ = renamed.get(("eq", f.name), (f.name, 1.0))
                got = getattr(p.eq, name)[i, b].item()
                expected = S.FILTER_TYPES[band.type] if f.name == "type" else getattr(band, f.name)
                assert got == pytest.approx(expected, rel=1e-6), f"eq.bands[{b}].{f.name}"
                seen.add(f"eq.{name}")
    # Nothing in the contract that settings do not set.
    assert seen == {name for name, _ in p.named_tensors()}


def test_one_batch_one_network_size():
    a, b = random_settings(1), random_settings(2)
    b.reverb.fdn_lines = 64
    with pytest.raises(ValueError, match="fdn_lines"):
        settings_to_params([a, b])
    with pytest.raises(ValueError, match="no settings"):
        settings_to_params([])


# -- the contract checks shapes in one place --------------------------------------------------------


def _compressor(batch=2, **change):
    values = dict(
        threshold_db=torch.full((batch,), -20.0),
        ratio=torch.full((batch,), 4.0),
        knee_db=torch.zeros(batch),
        attack_ms=torch.full((batch,), 10.0),
        release_ms=torch.full((batch,), 100.0),
        makeup_db=torch.zeros(batch),
        lookahead=torch.zeros(batch, dtype=torch.bool),
    )
    return CompressorParams(**{**values, **change})


def test_shapes_and_kinds_are_checked_naming_the_field():
    with pytest.raises(ValueError, match=r"CompressorParams.ratio has shape \(3,\) but threshold_db has \(2,\)"):
        _compressor(ratio=torch.ones(3))
    with pytest.raises(ValueError, match=r"CompressorParams.threshold_db must be \(batch,\)"):
        _compressor(threshold_db=torch.tensor(-20.0))
    with pytest.raises(TypeError, match="CompressorParams.lookahead must be a bool tensor"):
        _compressor(lookahead=torch.zeros(2))
    with pytest.raises(TypeError, match="CompressorParams.ratio must be a floating-point tensor"):
        _compressor(ratio=4.0)
    with pytest.raises(TypeError, match="EQParams.filter_type must be an integer tensor"):
        EQParams(torch.ones(1, 6), torch.ones(1, 6), torch.ones(1, 6), torch.ones(1, 6), torch.ones(1, 6) > 0)
    with pytest.raises(ValueError, match=r"EQParams.frequency_hz must be \(batch, bands\)"):
        EQParams(torch.ones(6), torch.ones(6), torch.ones(6), torch.ones(6, dtype=torch.long), torch.ones(6) > 0)
    with pytest.raises(ValueError, match="fdn_lines must be one of"):
        ReverbParams(*[torch.ones(1)] * 10, fdn_lines=48)


def test_chain_checks_its_stages_and_the_signal_agree():
    p = settings_to_params([random_settings(1), random_settings(2)])
    with pytest.raises(ValueError, match="batch size"):
        ChainParams(p.eq, _compressor(batch=3), p.reverb, p.level)
    with pytest.raises(TypeError, match="ChainParams.level must be LevelParams"):
        ChainParams(p.eq, p.compressor, p.reverb, p.compressor)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="MultiEQ's 6 bands, got 4"):
        ChainParams(p.eq.map_tensors(lambda _, t: t[:, :4]), p.compressor, p.reverb, p.level)
    with pytest.raises(ValueError, match="3 signals but parameters for 2"):
        vocal_chain(torch.zeros(3, 1, 100), SR, p)
    with pytest.raises(TypeError, match="ChainParams"):
        vocal_chain(torch.zeros(2, 1, 100), SR, dict(p.named_tensors()))  # type: ignore[arg-type]


def test_selecting_items_moving_and_mapping():
    settings = [random_settings(1), random_settings(2), random_settings(3)]
    p = settings_to_params(settings)
    one = settings_to_params(settings[1:2])
    for (name, got), (_, expected) in zip(p[1].named_tensors(), one.named_tensors()):
        assert torch.equal(got, expected), name
    assert p[1:].batch_size == 2 and p[-1].level.vocal_gain_db.item() == p.level.vocal_gain_db[2].item()
    assert p[torch.tensor([True, False, True])].batch_size == 2
    moved = p.to("cpu")
    assert moved.device == torch.device("cpu") and moved.reverb.fdn_lines == p.reverb.fdn_lines
    doubled = p.map_tensors(lambda name, t: t * 2 if name == "level.vocal_gain_db" else t)
    assert torch.equal(doubled.level.vocal_gain_db, 2 * p.level.vocal_gain_db)
    assert doubled.eq.frequency_hz is p.eq.frequency_hz
    assert [name for name, _ in p.named_tensors()][:2] == ["eq.frequency_hz", "eq.gain_db"]


def test_stages_render_the_level_as_a_gain():
    # Known answer: the level stage alone multiplies by 10^(dB/20).
    p = settings_to_params([random_settings(4)])
    x = torch.full((1, 2, 8), 0.25)
    gain_db = p.level.vocal_gain_db.item()
    y = vocal_chain(x, SR, p, start="level")
    torch.testing.assert_close(y, x * 10 ** (gain_db / 20), rtol=1e-6, atol=0)
    assert isinstance(p.level, LevelParams)


def test_public_dsp_api_is_annotated():
    # Every function and public method a dsp module exports declares its parameter and return types
    # (mypy checks them: dsp/ is in [tool.mypy] files).
    import importlib
    import inspect

    unannotated = []
    for module_name in ("biquads", "chain", "compressor", "constants", "eq", "params", "reverb"):
        module = importlib.import_module(f"vocalmix.dsp.{module_name}")
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                functions = [
                    (f"{name}.{k}", v)
                    for k, v in vars(obj).items()
                    if inspect.isfunction(v)
                    and (not k.startswith("_") or k in ("__init__", "__post_init__", "__getitem__"))
                ]
            else:
                functions = [(name, obj)] if inspect.isfunction(obj) else []
            for qualified, function in functions:
                signature = inspect.signature(function)
                missing = [
                    p
                    for p in signature.parameters
                    if p not in ("self", "cls") and signature.parameters[p].annotation is inspect.Parameter.empty
                ]
                if signature.return_annotation is inspect.Signature.empty and not qualified.endswith("__init__"):
                    missing.append("return")
                if missing:
                    unannotated.append(f"{module_name}.{qualified}: {', '.join(missing)}")
    assert unannotated == []


def test_arguments_are_the_effect_functions_parameter_names():
    """Each effect (function and module) takes its parameters as ``**params.arguments()``: every
    field must be a parameter of the function by the same name, and every setting the function
    takes must be a field (so a renamed argument or field fails here, not at a call site)."""
    import inspect

    from vocalmix.dsp.compressor import compressor
    from vocalmix.dsp.eq import multi_eq
    from vocalmix.dsp.reverb import fdn_reverb

    # Arguments of the functions that are not settings: the signal, the rate, how to run.
    not_settings = {"x", "sr", "n_fft", "method", "backend", "training", "ir_method"}
    for cls, function in ((EQParams, multi_eq), (CompressorParams, compressor), (ReverbParams, fdn_reverb)):
        fields = [f.name for f in dataclasses.fields(cls)]
        parameters = [p for p in inspect.signature(function).parameters if p not in not_settings]
        assert fields == parameters, cls.__name__
    params = ReverbParams(**{f.name: torch.ones(2) for f in dataclasses.fields(ReverbParams)[:10]})
    arguments = params.arguments()
    assert arguments["fdn_lines"] == 64 and arguments["dry_wet"] is params.dry_wet
