"""Shared fixtures. Real data lives in ../shared/data (or $DESCNET_SHARED_DATA); tests that need it skip
with a clear reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DESCNET_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared real data; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set DESCNET_SHARED_DATA to its folder)")
    return SHARED_DATA


def shared_file(root: Path, relative: str) -> Path:
    """A file under the shared data; skips the test when that file is absent."""
    path = root / relative
    if not path.exists():
        pytest.skip(f"{path} is not in the shared data")
    return path


@pytest.fixture(autouse=True)
def _few_threads():
    """Keep each test on the machine's cores without oversubscription."""
    import torch

    torch.manual_seed(0)
    yield
