"""`render --tail auto` is one pass too (issue 15 item 4): the chain's length follows from the reverb's
tail, which the rules decide (from the tempo alone) before rendering the first stage, so EQ and
compressor are rendered once, while deciding, at the length the render needs.

Renders are counted by the code objects that run them (a profiler hook on every thread, so no import
name or search thread escapes); the one-pass mix is compared byte for byte with the mix rendered the
way it was before: the decision made without a render length, the chain rendered again by the render.
"""

import contextlib
import json
import sys
import threading
from pathlib import Path

import pytest
import soundfile as sf

from vocalmix import render
from vocalmix.dsp import compressor as dsp_compressor
from vocalmix.plugins import reverb_tail_seconds
from vocalmix.rules.method import RulesMethod
from vocalmix.settings import MixSettings

SR = 44100


@pytest.fixture(scope="module")
def song(demo_song_10s):
    return demo_song_10s


@contextlib.contextmanager
def counting_compressor_renders():
    """Counts whole-signal compressor renders and block-wise ones (one CompressorStream per render)."""
    targets = {dsp_compressor.compressor.__code__, dsp_compressor.CompressorStream.__init__.__code__}
    counts = {"renders": 0}

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in targets:
            counts["renders"] += 1

    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        yield counts
    finally:
        sys.setprofile(None)
        threading.setprofile(None)


def _render(folder: Path, name: str, tail: str) -> dict:
    request = render.RenderRequest(
        vocal_path=folder / "vocal.wav",
        backing_path=folder / "backing.wav",
        output=folder / f"{name}.wav",
        stems=True,
        force=True,
        tail=tail,
    )
    render.run_render(request)
    return json.loads((folder / f"{name}.settings.json").read_text())


def _without_timings(document):
    if isinstance(document, dict):
        return {k: _without_timings(v) for k, v in document.items() if k not in ("timings_s", "rule_timings_s")}
    if isinstance(document, list):
        return [_without_timings(v) for v in document]
    return document


def test_tail_auto_renders_each_stage_once_and_equals_rendering_the_chain_again(song, monkeypatch):
    with counting_compressor_renders() as counted:
        one_pass = _render(song, "one-pass", "auto")
    steps = one_pass["report"]["compressor"]["steps"]
    tail_s = one_pass["report"]["output_stage"]["tail_s"]
    assert tail_s == reverb_tail_seconds(MixSettings.from_dict(one_pass["settings"])) > 1.0
    # The search's renders (its steps after the unprocessed one) and nothing after them.
    assert len(steps) - 1 >= 2 and counted["renders"] == len(steps) - 1

    # Before: the rules decided without a render length, so the render ran EQ and compressor again.
    original = RulesMethod.decide_stages

    def without_render_length(self, song_analysis, render_samples=None, **kwargs):
        return original(self, song_analysis, None, **kwargs)

    monkeypatch.setattr(RulesMethod, "decide_stages", without_render_length)
    with counting_compressor_renders() as counted_again:
        again = _render(song, "rendered-again", "auto")
    assert counted_again["renders"] == len(steps)  # one more: the chain in the render path

    assert _without_timings(again["settings"]) == _without_timings(one_pass["settings"])
    assert again["report"]["output_stage"]["tail_s"] == tail_s
    for suffix in (".wav", ".vocal.wav", ".backing.wav"):
        assert (song / f"one-pass{suffix}").read_bytes() == (song / f"rendered-again{suffix}").read_bytes(), suffix
    mix, rate = sf.read(song / "one-pass.wav", always_2d=True)
    assert rate == SR and mix.shape[0] == 10 * SR + round(tail_s * SR)
