from pathlib import Path

import pytest

SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"


@pytest.fixture
def shared_audio() -> Path:
    """The real recordings in ../shared/audio; tests using them skip where it is absent."""
    if not SHARED_AUDIO.is_dir():
        pytest.skip(f"real audio not available: {SHARED_AUDIO} is absent")
    return SHARED_AUDIO


@pytest.fixture(scope="module")
def demo_song_10s(tmp_path_factory) -> Path:
    """A folder with the demo's vocal.wav and backing.wav, 10 s at 44.1 kHz, 24-bit (one per test module)."""
    import soundfile as sf

    from vocalmix.demo import demo_backing, demo_vocal

    folder = tmp_path_factory.mktemp("demo_song_10s")
    sf.write(folder / "vocal.wav", demo_vocal(44100, seconds=10.0).T, 44100, subtype="PCM_24")
    sf.write(folder / "backing.wav", demo_backing(44100, seconds=10.0).T, 44100, subtype="PCM_24")
    return folder


@pytest.fixture(autouse=True)
def _isolated_vocalmix_logger():
    """Give every test the vocalmix logger as the package leaves it, and put it back afterwards.

    An in-process CLI call (in a test or a module-scoped fixture) attaches a handler bound to that
    test's captured stderr and stops propagation; left in place, later tests' caplog sees nothing
    and the stale handler writes to a closed stream.
    """
    import logging

    logger = logging.getLogger("vocalmix")

    def reset():
        logger.handlers[:] = []
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
        logger.disabled = False

    reset()
    yield
    reset()
