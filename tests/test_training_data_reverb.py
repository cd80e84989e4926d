"""Reverb estimator, IR fitting, and the ``vocalmix dataset`` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vocalmix.nets.cnn_targets import REVERB_TARGETS, TARGET_RANGES
from vocalmix.training import reverb_estimation as R

SR = 44100


def test_estimator_trains_predicts_in_range_and_round_trips(tmp_path):
    x, u, settings = R.make_estimator_data(4, clips_per_setting=2, seed=3, seconds=1.0)
    assert x.shape[0] == u.shape[0] == settings.shape[0] == 8 and bool(torch.isfinite(x).all())
    assert float(u.min()) >= 0 and float(u.max()) <= 1
    est = R.train_estimator(x, u, epochs=20, seed=0)
    rng = np.random.default_rng(0)
    wet = rng.standard_normal((2, int(SR * 5))).astype(np.float32) * 0.05
    pred = est.predict(wet, SR)
    assert list(pred) == REVERB_TARGETS
    for name, value in pred.items():
        lo, hi, _ = TARGET_RANGES[name]
        slack = 1e-6 * max(1.0, abs(lo), abs(hi))  # float32 rounding of the bounds
        assert lo - slack <= value <= hi + slack, name
    est.save(tmp_path / "est.pt")
    again = R.ReverbEstimator.load(tmp_path / "est.pt")
    assert again.predict(wet, SR) == pred
    report = R.evaluate_estimator(est, x, settings)
    assert set(report) == set(REVERB_TARGETS) and all(r["mae"] >= 0 for r in report.values())


def test_fit_recovers_reverb_time_of_a_known_fdn_ir():
    true = {
        "reverb_time_s": 0.6,
        "low_cutoff_hz": 200.0,
        "low_q": 0.5,
        "low_gain_db_per_s": -5.0,
        "high_cutoff_hz": 4000.0,
        "high_q": 0.5,
        "high_gain_db_per_s": -20.0,
        "dry_wet_pct": 60.0,
        "fade_in_s": 0.0,
    }
    n = int(0.2 * SR)
    with torch.no_grad():
        ir = R._fdn_ir(SR, 12, {k: torch.tensor(v) for k, v in true.items()}, n)
    start = dict(true, reverb_time_s=1.2)
    result = R.fit_impulse_response(
        ir.numpy(), SR, rooms=(12,), search_steps=0, steps=20, lr=0.15, max_seconds=0.2, init=start
    )
    assert result["history"][-1] < result["history"][0] * 0.5
    assert abs(result["settings"]["reverb_time_s"] - 0.6) < 0.6 * 0.25
    assert result["settings"]["room_size"] == 12


def _cli(*args):
    from vocalmix.cli import main

    return main(list(args))


def test_dataset_cli_build_and_info(tmp_path, capsys):
    out = tmp_path / "ds"
    code = _cli(
        "dataset",
        "build",
        "synthetic:3",
        str(out),
        "--serial",
        "--eq-count",
        "3",
        "--tasks",
        "level,eq",
        "--synthetic-seconds",
        "5",
        "--no-progress",
    )
    assert code == 0
    assert (out / "manifest.json").is_file()
    capsys.readouterr()
    assert _cli("dataset", "info", str(out), "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["tasks"]) == {"level", "eq"} and sum(info["songs"].values()) == 3
    assert _cli("dataset", "info", str(out)) == 0
    assert "level" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ("dataset", "build", "/no/such/folder", "OUT"),
        ("dataset", "build", "synthetic:2", "OUT", "--tasks", "level,mastering"),
        ("dataset", "build", "synthetic:0", "OUT"),
        ("dataset", "build", "synthetic:2", "OUT", "--split", "0.8,0.2"),
        ("dataset", "info", "/no/such/dataset"),
    ],
)
def test_dataset_cli_bad_input_exits_2(args, tmp_path, capsys):
    args = tuple(str(tmp_path / a) if a == "OUT" else a for a in args)
    assert _cli(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("vocalmix: error:") and len(err.strip().splitlines()) == 1


def test_fit_ir_cli_shows_progress_and_writes_a_settings_file(tmp_path, capsys):
    import soundfile as sf

    from vocalmix.settings import MixSettings

    true = {
        "reverb_time_s": 0.6,
        "low_cutoff_hz": 200.0,
        "low_q": 0.5,
        "low_gain_db_per_s": -5.0,
        "high_cutoff_hz": 4000.0,
        "high_q": 0.5,
        "high_gain_db_per_s": -20.0,
        "dry_wet_pct": 60.0,
        "fade_in_s": 0.0,
    }
    with torch.no_grad():
        ir = R._fdn_ir(SR, 12, {k: torch.tensor(v) for k, v in true.items()}, int(0.15 * SR)).numpy()
    sf.write(tmp_path / "ir.wav", (ir / np.abs(ir).max() * 0.9).T, SR, subtype="FLOAT")
    out = tmp_path / "fitted.json"
    args = (
        "dataset",
        "fit-ir",
        str(tmp_path / "ir.wav"),
        "--search-steps",
        "1",
        "--steps",
        "2",
        "--max-seconds",
        "0.15",
        "--json",
        "--settings-out",
        str(out),
    )
    assert _cli(*args) == 0
    captured = capsys.readouterr()
    # 4 candidate rooms x 1 step + 2 steps, reported as steps done of the total.
    assert "fitting ir.wav" in captured.err and "6/6" in captured.err
    fitted = json.loads(captured.out)["settings"]
    loaded = MixSettings.from_json(out.read_text(), source=str(out))
    assert loaded.reverb.room_size == fitted["room_size"]
    assert loaded.reverb.reverb_time_s == pytest.approx(fitted["reverb_time_s"])
    assert loaded.reverb.dry_wet_pct == pytest.approx(fitted["dry_wet_pct"])
    assert loaded.eq == MixSettings().eq  # everything else is the defaults
    # An existing file is never overwritten without --force.
    before = out.read_text()
    assert _cli(*args) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == before
