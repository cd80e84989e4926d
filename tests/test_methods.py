"""The learned methods at run time (vocalmix/methods/): each stage rendered once, on the stage before it."""

from __future__ import annotations

import numpy as np
import pytest

from vocalmix import mixing
from vocalmix.demo import demo_backing, demo_vocal
from vocalmix.methods import cnn as cnn_method
from vocalmix.methods import get_method

SR = 44100


@pytest.fixture(scope="module")
def song():
    return demo_vocal(SR, 8.0)[:1].astype(np.float32), demo_backing(SR, 8.0).astype(np.float32)


@pytest.mark.parametrize("target_lra_lu", [None, 4.0], ids=["predicted-target", "compressing-target"])
def test_cnn_renders_each_stage_once_and_as_the_whole_chain_does(song, monkeypatch, target_lra_lu):
    """The demo vocal meets the predicted loudness-range target uncompressed; a 4 LU target makes the
    search compress, so both ways the compressor stage is reached are covered."""
    vocal, backing = song
    stages, level_input = [], []
    real_process, real_level, real_search = (
        cnn_method.process_vocal,
        cnn_method.decide_level,
        cnn_method.search_compression,
    )

    def counting_process(x, sample_rate, settings, upto="level", start="eq"):
        stages.append((start, upto))
        return real_process(x, sample_rate, settings, upto=upto, start=start)

    def recording_level(wet, *args, **kwargs):
        level_input.append(wet)
        return real_level(wet, *args, **kwargs)

    monkeypatch.setattr(cnn_method, "process_vocal", counting_process)
    monkeypatch.setattr(cnn_method, "decide_level", recording_level)
    if target_lra_lu is not None:
        monkeypatch.setattr(
            cnn_method,
            "search_compression",
            lambda x, sample_rate, predicted: real_search(x, sample_rate, target_lra_lu),
        )
    decision = get_method("cnn").decide(vocal, backing, SR)

    # EQ from the raw vocal once; the compressor stage only if the search rendered none; the reverb once.
    compressed_by_search = len(decision.report["compressor"]["steps"]) > 1
    assert compressed_by_search == (target_lra_lu is not None)
    expected = (
        [("eq", "eq")] + ([] if compressed_by_search else [("compressor", "compressor")]) + [("reverb", "reverb")]
    )
    assert stages == expected
    # What the level model and rule measured is the whole chain rendered from the raw vocal, bit for bit.
    whole = mixing.process_vocal(vocal, SR, decision.settings, upto="reverb")
    np.testing.assert_array_equal(level_input[0], whole)
