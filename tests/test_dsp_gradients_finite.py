"""Every continuous setting of EQ, compressor and reverb, swept over its range, gives
finite outputs and finite gradients (issue 18, item 1).

The ranges are read from :mod:`vocalmix.settings` (the plug-ins' ranges, written once
there), so a widened range is swept automatically. Each sweep renders one batch whose
items hold the swept values (the other settings at typical vocal values) on a signal
with silence, quiet and loud bursts, and on digital silence, then back-propagates a
random projection of the output to the settings and to the input.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vocalmix.dsp.chain import vocal_chain
from vocalmix.dsp.compressor import compressor
from vocalmix.dsp.constants import FilterType
from vocalmix.dsp.eq import multi_eq
from vocalmix.dsp.params import ChainParams, CompressorParams, EQParams, LevelParams, ReverbParams
from vocalmix.dsp.reverb import fdn_reverb
from vocalmix.settings import CompressorSettings, EQBand, LevelSettings, ReverbSettings

SR = 44100
N_SAMPLES = SR // 5

# Points of the normalised range (the settings' own linear or log scale): both ends,
# just inside them, and the interior.
UNIT_POINTS = (0.0, 1e-4, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0 - 1e-4, 1.0)


def specs(cls) -> dict:
    return {f.name: f.metadata["spec"] for f in dataclasses.fields(cls) if "spec" in f.metadata}


def sweep(spec, extra=()) -> list[float]:
    values = {spec.denormalise(u) for u in UNIT_POINTS} | {float(v) for v in extra}
    return sorted(v for v in values if spec.minimum <= v <= spec.maximum)


def burst_signal(batch: int) -> torch.Tensor:
    """(batch, 1, n): even items are bursts from -60 to +6 dBFS after silence, odd ones silence."""
    g = torch.Generator().manual_seed(18)
    n = N_SAMPLES
    t = torch.arange(n)
    envelope = torch.zeros(n)
    bursts = torch.linspace(-60.0, 6.0, 8)
    width = n // 10
    for k, level_db in enumerate(bursts):
        start = n // 5 + k * width
        envelope[start : start + width // 2] = 10.0 ** (level_db / 20.0)
    tone = torch.sin(2 * torch.pi * 220.0 * t / SR) + 0.3 * torch.randn(n, generator=g)
    x = torch.zeros(batch, 1, n)
    x[0::2, 0] = envelope * tone
    return x


def assert_finite(render, values, name):
    """Render a batch of two items per value (signal, silence); check forward and backward."""
    doubled = [v for v in values for _ in range(2)]
    p = torch.tensor(doubled, dtype=torch.float32, requires_grad=True)
    x = burst_signal(len(doubled)).requires_grad_(True)
    y = render(x, p)
    bad = ~torch.isfinite(y).flatten(1).all(1)
    assert not bad.any(), f"{name}: non-finite output at {p[bad].tolist()}"
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    (y * weights).sum().backward()
    assert p.grad is not None, f"{name}: no gradient reaches the setting"
    bad = ~torch.isfinite(p.grad)
    assert not bad.any(), f"{name}: gradient {p.grad[bad].tolist()} at {p[bad].tolist()}"
    bad = ~torch.isfinite(x.grad).flatten(1).all(1)
    assert not bad.any(), f"{name}: non-finite input gradient at {p[bad].tolist()}"


REVERB = dict(
    room_size=20.0,
    reverb_time_s=1.8,
    low_cutoff_hz=100.0,
    low_q=0.5,
    low_gain_db_per_s=1.0,
    high_cutoff_hz=2000.0,
    high_q=0.5,
    high_gain_db_per_s=-10.0,
    dry_wet=0.3,
    fade_in_s=0.2,
)
REVERB_SWEEPS = {
    name: sweep(spec) for name, spec in specs(ReverbSettings).items() if name not in ("room_size", "dry_wet_pct")
}
REVERB_SWEEPS["dry_wet"] = [v / 100.0 for v in sweep(specs(ReverbSettings)["dry_wet_pct"])]
# Fade-ins of 1-10 ms: the twin network's per-second decay factor 10^(-3/T) underflows.
REVERB_SWEEPS["fade_in_s"] = sweep(
    specs(ReverbSettings)["fade_in_s"], extra=(1e-6, 1e-3, 2e-3, 5e-3, 9.5e-3, 9.7e-3, 1e-2, 0.08)
)


@pytest.mark.parametrize("name", sorted(REVERB_SWEEPS))
def test_reverb_sweep_is_finite(name):

    def render(x, p):
        kw = dict(REVERB, **{name: p})
        return fdn_reverb(x, SR, **kw)

    assert_finite(render, REVERB_SWEEPS[name], name)


@pytest.mark.parametrize("lines,room", [(16, 30), (256, 1)])
def test_reverb_extreme_sizes_with_short_fade_are_finite(lines, room):
    def render(x, p):
        return fdn_reverb(x, SR, **dict(REVERB, room_size=room, fade_in_s=p), fdn_lines=lines)

    assert_finite(render, [1e-3, 5e-3, 9.0], f"fade_in_s room {room}, {lines} lines")


COMPRESSOR = dict(threshold_db=-24.0, ratio=4.0, knee_db=6.0, attack_ms=10.0, release_ms=120.0, makeup_db=3.0)
COMPRESSOR_SWEEPS = {name: sweep(spec) for name, spec in specs(CompressorSettings).items()}
# Either side of the plug-in's switch to an infinite ratio.
COMPRESSOR_SWEEPS["ratio"] = sweep(specs(CompressorSettings)["ratio"], extra=(15.9, 15.95))


@pytest.mark.parametrize("lookahead,training", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("name", sorted(COMPRESSOR_SWEEPS))
def test_compressor_sweep_is_finite(name, lookahead, training):
    def render(x, p):
        kw = dict(COMPRESSOR, **{name: p})
        return compressor(x, SR, lookahead=lookahead, training=training, **kw)

    assert_finite(render, COMPRESSOR_SWEEPS[name], name)


EQ_SPECS = specs(EQBand)
EQ_FFT = 2 * N_SAMPLES


@pytest.mark.parametrize("filter_type", list(FilterType), ids=lambda t: t.name)
@pytest.mark.parametrize("name", ["frequency_hz", "q", "gain_db"])
def test_eq_sweep_is_finite(name, filter_type):
    """One band of each type, swept, at every corner of the other two band settings.

    The FFT length is fixed (finiteness does not depend on the zero-padding, which only
    sets how much of the tail aliases), so the 20 Hz, Q 8 corners stay cheap.
    """
    others = [n for n in ("frequency_hz", "q", "gain_db") if n != name]
    ends = {n: (EQ_SPECS[n].minimum, EQ_SPECS[n].maximum) for n in others}
    corners = [(a, b) for a in ends[others[0]] for b in ends[others[1]]]
    values = sweep(EQ_SPECS[name])
    swept = [v for v in values for _ in corners]
    fixed = {n: [c[i] for _ in values for c in corners for _ in range(2)] for i, n in enumerate(others)}

    def render(x, p):
        band = {n: torch.tensor(fixed[n])[:, None] for n in others}
        band[name] = p[:, None]
        kinds = torch.full((p.shape[0], 1), int(filter_type))
        return multi_eq(x, SR, band["frequency_hz"], band["gain_db"], band["q"], kinds, n_fft=EQ_FFT)

    assert_finite(render, swept, f"{filter_type.name} {name}")


def test_eq_six_stacked_extreme_bands_are_finite():
    """Six +15 dB, Q 8 peaks at 20 Hz (the slowest chain in range) and six -60 dB cuts."""

    def render(x, p):
        batch = p.shape[0]
        gain = p[:, None].expand(batch, 6)
        return multi_eq(
            x,
            SR,
            torch.full((batch, 6), 20.0),
            gain,
            torch.full((batch, 6), 8.0),
            torch.full((batch, 6), int(FilterType.PEAK)),
        )  # automatic (capped) FFT length

    assert_finite(render, [-60.0, 15.0], "six stacked peaks")


def random_settings(batch: int, generator: torch.Generator) -> ChainParams:
    """Chain parameters: each setting per item at its minimum, maximum or uniform on its scale."""

    def draw(spec):
        u = torch.rand(batch, generator=generator)
        pick = torch.randint(0, 3, (batch,), generator=generator)
        u = torch.where(pick == 0, 0.0, torch.where(pick == 1, 1.0, u))
        return torch.tensor([spec.denormalise(float(v)) for v in u])

    drawn = {}
    for cls in (CompressorSettings, ReverbSettings, LevelSettings):
        for name, spec in specs(cls).items():
            drawn[name] = draw(spec)
    dry_wet = drawn.pop("dry_wet_pct") / 100.0
    short = torch.rand(batch, generator=generator) < 0.4  # many 0-10 ms fade-ins
    drawn["fade_in_s"] = torch.where(short, 0.01 * torch.rand(batch, generator=generator), drawn["fade_in_s"])
    bands = {name: torch.stack([draw(EQ_SPECS[name]) for _ in range(6)], 1) for name in EQ_SPECS}
    filter_type = torch.randint(0, len(FilterType), (batch, 6), generator=generator)
    enabled = torch.rand(batch, 6, generator=generator) < 0.7
    lookahead = torch.rand(batch, generator=generator) < 0.5
    return ChainParams(
        eq=EQParams(bands["frequency_hz"], bands["gain_db"], bands["q"], filter_type, enabled),
        compressor=CompressorParams(**{n: drawn[n] for n in specs(CompressorSettings)}, lookahead=lookahead),
        reverb=ReverbParams(
            **{n: drawn[n] for n in specs(ReverbSettings) if n in drawn}, dry_wet=dry_wet, fdn_lines=64
        ),
        level=LevelParams(**{n: drawn[n] for n in specs(LevelSettings)}),
    )


def test_whole_chain_random_corner_settings_are_finite():
    g = torch.Generator().manual_seed(2026)
    batch = 12
    params = random_settings(batch, g)
    learnable = [k for k, v in params.named_tensors() if v.is_floating_point() and k != "reverb.room_size"]
    params = params.map_tensors(lambda k, v: v.clone().requires_grad_(True) if k in learnable else v)
    x = burst_signal(batch).requires_grad_(True)
    y = vocal_chain(x, SR, params)
    assert torch.isfinite(y).all()
    (y * torch.randn(y.shape, generator=g)).sum().backward()
    leaves = dict(params.named_tensors())
    for k in learnable:
        assert torch.isfinite(leaves[k].grad).all(), f"{k}: {leaves[k].grad}"
    assert torch.isfinite(x.grad).all()
