"""Listening-test kit: excerpts and loudness, hidden names, the server's storage, the statistics,
and the page itself driven in a real headless Chromium."""

import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix import analysis
from vocalmix.listening.analyse import analyse, holm, hypothesis_tests, summarise
from vocalmix.listening.build import BuildRequest, build_test, loudest_start
from vocalmix.listening.server import ListeningServer

SR = 44100
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _song_audio(seed: int, seconds: float, loud_at: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.02 * rng.standard_normal((2, t.size)) + 0.05 * np.sin(2 * np.pi * (220 + 20 * seed) * t)
    if loud_at is not None:
        x[:, int(loud_at * SR) : int((loud_at + 3) * SR)] *= 8
    return x.astype(np.float32)


def make_compare_dir(root: Path, songs=("alpha", "beta"), methods=("rules", "cnn"), seconds=4.0) -> Path:
    """A folder shaped like 'vocalmix compare' output (compare.json + mixes), from synthetic audio."""
    out = root / "compare"
    out.mkdir()
    manifest = {"methods": list(methods), "songs": []}
    for i, song in enumerate(songs):
        folder = out / song
        folder.mkdir()
        reference = root / f"{song}_mix.wav"
        sf.write(reference, _song_audio(10 * i, seconds).T, SR)
        mixes = {}
        for j, method in enumerate(methods):
            path = folder / f"{method}.wav"
            sf.write(path, (_song_audio(10 * i + j + 1, seconds) * (0.5 + j)).T, SR)
            mixes[method] = {"mix": str(path)}
        manifest["songs"].append({"name": song, "reference": str(reference), "mixes": mixes})
    (out / "compare.json").write_text(json.dumps(manifest))
    return out


def test_loudest_passage_is_found():
    x = _song_audio(0, 30.0, loud_at=20.0)
    start = loudest_start(x, SR, 5.0)
    # The 3 s loud stretch at 20-23 s lies inside the chosen 5 s window.
    assert start <= 20.0 * SR and start + 5.0 * SR >= 23.0 * SR


def test_build_normalises_hides_names_and_keeps_a_key(tmp_path):
    compare = make_compare_dir(tmp_path)
    out = tmp_path / "test"
    test = build_test(BuildRequest(compare, out, excerpt_seconds=3.0, anchor=True, seed=3))
    key = json.loads((out / "private" / "key.json").read_text())
    public = (out / "test.json").read_text()
    assert len(test["songs"]) == 2
    for song in test["songs"]:
        methods = sorted(key["stimuli"][s["id"]]["method"] for s in song["stimuli"])
        assert methods == ["anchor", "cnn", "reference", "rules"]
        for stimulus in song["stimuli"]:
            data, rate = sf.read(out / stimulus["src"], always_2d=True)
            assert rate == SR and data.shape == (3 * SR, 2)
            assert analysis.integrated_loudness(data.T, SR) == pytest.approx(-14.0, abs=0.2)
            assert analysis.true_peak(data.T, SR) <= -0.9
    for name in ("rules", "cnn", "reference", "anchor", "alpha"):
        assert name not in public  # method and song names are hidden from the page
    assert not any(n in p.name for p in (out / "audio").iterdir() for n in ("rules", "cnn", "reference"))
    for name in ("index.html", "app.js", "style.css"):
        assert (out / name).stat().st_size > 500
    # The anchor is the reference low-passed at 3.5 kHz: little energy above 5 kHz.
    anchor = next(s for s in key["stimuli"] if key["stimuli"][s]["method"] == "anchor")
    data, _ = sf.read(out / "audio" / f"{anchor}.wav")
    spectrum = np.abs(np.fft.rfft(data[:, 0])) ** 2
    freqs = np.fft.rfftfreq(data.shape[0], 1 / SR)
    assert spectrum[freqs > 5000].sum() < 1e-4 * spectrum.sum()


def test_build_refuses_a_folder_that_is_not_a_comparison(tmp_path, capsys):
    from vocalmix.cli import main

    assert main(["listening-test", "build", str(tmp_path), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compare.json" in err[0] and str(tmp_path) in err[0]


@pytest.fixture
def served(tmp_path):
    compare = make_compare_dir(tmp_path)
    out = tmp_path / "test"
    test = build_test(BuildRequest(compare, out, excerpt_seconds=3.0, seed=5))
    server = ListeningServer(out, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, out, test
    server.shutdown()
    server.server_close()


def _request(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def _complete_submission(test, listener="listener-1", value=lambda song, i, c: 3):
    ratings = []
    for song in test["songs"]:
        for i, s in enumerate(song["stimuli"]):
            for c in test["categories"]:
                ratings.append(
                    {"song": song["id"], "stimulus": s["id"], "category": c["id"], "rating": value(song, i, c)}
                )
    return {"test_id": test["test_id"], "listener_id": listener, "ratings": ratings}


def test_server_serves_only_the_page_and_stores_submissions(served):
    server, out, test = served
    status, body, _ = _request(server.url)
    assert status == 200 and b"app.js" in body
    assert _request(server.url + "private/key.json")[0] == 404
    assert _request(server.url + "responses/")[0] == 404
    src = test["songs"][0]["stimuli"][0]["src"]
    status, body, headers = _request(server.url + src, headers={"Range": "bytes=0-99"})
    assert status == 206 and len(body) == 100 and headers["Content-Range"].endswith(f"/{(out / src).stat().st_size}")
    incomplete = _complete_submission(test)
    incomplete["ratings"] = incomplete["ratings"][:-1]
    status, body, _ = _request(
        server.url + "api/submit", json.dumps(incomplete).encode(), {"Content-Type": "application/json"}
    )
    assert status == 400 and b"missing" in body
    for _ in range(2):  # the same listener twice: two files, nothing overwritten
        status, body, _ = _request(
            server.url + "api/submit",
            json.dumps(_complete_submission(test)).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 201
    stored = sorted((out / "responses").glob("*.json"))
    assert len(stored) == 2
    assert json.loads(stored[0].read_text())["ratings"] == _complete_submission(test)["ratings"]
    assert not list((out / "responses").glob(".*"))  # no temporary files left


def test_holm_matches_hand_computation():
    # Sorted p 0.01, 0.02, 0.04 -> 3*0.01, max(0.03, 2*0.02), max(0.04, 1*0.04).
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_statistics_of_consistent_ratings():
    # Six listeners x one song rank three methods the same way: Friedman Q = n (k - 1) = 12.
    rows = []
    for listener in range(6):
        for method, rating in (("a", 5), ("b", 3), ("c", 1)):
            rows.append(
                {
                    "listener": str(listener),
                    "submission": f"f{listener}",
                    "song": "s",
                    "method": method,
                    "category": "overall",
                    "rating": rating + (listener % 2 if method == "b" else 0),
                }
            )
    summary = {s["method"]: s for s in summarise(rows, ["overall"])}
    assert summary["a"]["mean"] == 5 and summary["b"]["mean"] == 3.5
    # b: 3,4,3,4,3,4 -> SD 0.5477, CI half width t(0.975, 5) * SD / sqrt(6) = 0.5748.
    assert summary["b"]["ci95_high"] - summary["b"]["mean"] == pytest.approx(0.5748, abs=1e-3)
    tests = hypothesis_tests(rows, ["overall"])
    friedman = next(t for t in tests if t["test"] == "friedman")
    assert friedman["statistic"] == pytest.approx(12.0)
    wilcoxon = [t for t in tests if t["test"] == "wilcoxon"]
    assert len(wilcoxon) == 3 and all(t["p_holm"] >= t["p_value"] for t in wilcoxon)
    # Exact two-sided signed-rank p for six positive differences: 2 / 2^6; Holm multiplies the smallest by 3.
    assert min(t["p_value"] for t in wilcoxon) == pytest.approx(2 / 64)
    tukey = [t for t in tests if t["test"] == "tukey"]
    assert all(t["p_value"] < 0.001 for t in tukey)


def test_analyse_writes_tables_and_plot(served, capsys):
    server, out, test = served
    for listener in range(4):

        def rating(song, i, c, listener=listener):
            return 1 + (i + listener) % 5

        document = _complete_submission(test, f"listener-{listener}", value=rating)
        _request(server.url + "api/submit", json.dumps(document).encode(), {"Content-Type": "application/json"})
    result = analyse(out)
    assert result["submissions"] == 4
    for name in ("ratings.csv", "summary.csv", "tests.csv", "means.png", "report.md"):
        assert (out / "results" / name).stat().st_size > 0
    methods = {s["method"] for s in result["summary"]}
    assert methods == {"rules", "cnn", "reference"}


def _chromium_or_skip():
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("no browser: install Debian's chromium and chromium-driver (.ci/run does)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")


def test_page_in_headless_chromium(served, tmp_path):
    _chromium_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, out, test = served
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1100,1100",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        wait = WebDriverWait(driver, 10)
        driver.get(server.url)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#audios audio")) > 0)
        audios = driver.find_elements(By.CSS_SELECTOR, "#audios audio")
        first_song = driver.execute_script("return window.vocalmixListening.state().order[0].song")
        song = next(s for s in test["songs"] if s["id"] == first_song)
        served_srcs = {driver.execute_script("return new URL(arguments[0].src).pathname", a)[1:] for a in audios}
        assert served_srcs == {s["src"] for s in song["stimuli"]}

        def muted():
            return driver.execute_script("return window.vocalmixListening.audios().map(a => a.muted)")

        assert muted() == [False] + [True] * (len(audios) - 1)
        driver.find_element(By.ID, "play").click()
        wait.until(
            lambda d: d.execute_script(
                "return window.vocalmixListening.audios().every(a => !a.paused && a.currentTime > 0.3)"
            )
        )
        driver.find_elements(By.CSS_SELECTOR, "#switches button")[1].click()
        assert muted() == [i != 1 for i in range(len(audios))]
        times = driver.execute_script("return window.vocalmixListening.audios().map(a => a.currentTime)")
        assert max(times) - min(times) < 0.1  # all mixes play in sync, so switching is seamless
        driver.find_element(By.TAG_NAME, "body").send_keys(str(len(audios)))  # keys 1-9 switch too
        assert muted() == [i != len(audios) - 1 for i in range(len(audios))]
        assert driver.execute_script("return window.vocalmixListening.audios().every(a => !a.paused)")

        # A reload keeps the answers given so far.
        driver.find_elements(By.CSS_SELECTOR, "#ratings input[value='4']")[0].click()
        driver.refresh()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ratings input")) > 0)
        assert driver.find_elements(By.CSS_SELECTOR, "#ratings input[value='4']")[0].is_selected()

        for page in range(len(test["songs"])):
            groups = {e.get_attribute("name") for e in driver.find_elements(By.CSS_SELECTOR, "#ratings input")}
            for number, name in enumerate(sorted(groups)):
                value = 1 + number % 5
                driver.find_element(By.CSS_SELECTOR, f"input[name='{name}'][value='{value}']").click()
            if page < len(test["songs"]) - 1:
                driver.find_element(By.ID, "next").click()
        driver.find_element(By.ID, "experience").send_keys("3")
        driver.save_screenshot(str(tmp_path / "page.png"))
        submit = driver.find_element(By.ID, "submit")
        assert submit.is_enabled()
        submit.click()
        wait.until(lambda d: "stored" in d.find_element(By.ID, "status").text)
        screenshot_copy = os.environ.get("VOCALMIX_SCREENSHOT")  # keep a copy of the page for a report
        if screenshot_copy:
            shutil.copy(tmp_path / "page.png", screenshot_copy)
    finally:
        driver.quit()
    stored = list((out / "responses").glob("*.json"))
    assert len(stored) == 1
    document = json.loads(stored[0].read_text())
    n_stimuli = sum(len(s["stimuli"]) for s in test["songs"])
    assert len(document["ratings"]) == n_stimuli * len(test["categories"])
    assert {r["rating"] for r in document["ratings"]} <= {1, 2, 3, 4, 5}
    assert document["about"]["experience_years"] == 3
    assert [p["song"] for p in document["order"]] and document["test_id"] == test["test_id"]


def test_serve_command_listens_on_loopback_and_stops_on_sigterm(tmp_path):
    import re
    import subprocess
    import sys

    compare = make_compare_dir(tmp_path, songs=("alpha",), methods=("rules",))
    out = tmp_path / "test"
    build_test(BuildRequest(compare, out, excerpt_seconds=3.0, seed=1))
    proc = subprocess.Popen(
        [sys.executable, "-m", "vocalmix", "listening-test", "serve", str(out), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        status, body, _ = _request(url + "test.json")
        assert status == 200 and json.loads(body)["songs"][0]["id"] == "s1"
    finally:
        proc.terminate()
        remaining, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "stopped" in remaining
