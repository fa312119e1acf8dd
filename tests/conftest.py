"""Shared fixtures: where the real data sets live, and a clean temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """`../shared/data` beside the checkout, or $WEFT_SHARED_DATA."""
    return Path(os.environ.get("WEFT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The real data sets folder; tests that need it skip with a reason when it is absent."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"real data sets not found at {root} (set WEFT_SHARED_DATA)")
    return root
