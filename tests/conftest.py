from pathlib import Path

import pytest

SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"


@pytest.fixture
def shared_audio() -> Path:
    """The real recordings in ../shared/audio; tests using them skip where it is absent."""
    if not SHARED_AUDIO.is_dir():
        pytest.skip(f"real audio not available: {SHARED_AUDIO} is absent")
    return SHARED_AUDIO
