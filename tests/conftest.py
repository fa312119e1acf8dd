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
    return root.resolve()  # the catalog resolves paths; compare like with like


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No user or project catalogs, an empty cache, no $WEFT_DATA; cwd is tmp_path."""
    monkeypatch.setenv("WEFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("WEFT_DATA", raising=False)
    monkeypatch.delenv("WEFT_CATALOG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path
