"""Shared fixtures: the real sample recordings in ../shared/samples (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_samples_dir() -> Path | None:
    """``$DVSAPP_SAMPLES`` or ``../shared/samples`` beside the checkout, when present."""
    env = os.environ.get("DVSAPP_SAMPLES")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "samples")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The folder of real sample recordings; skips the test where it is absent."""
    d = find_samples_dir()
    if d is None:
        pytest.skip("real sample recordings absent: no ../shared/samples beside the checkout")
    return d


@pytest.fixture(scope="session")
def shared_models_dir() -> Path:
    """``../shared/models`` (real networks from other projects); skips where absent."""
    d = REPO_ROOT.parent / "shared" / "models"
    if not d.is_dir():
        pytest.skip("real networks absent: no ../shared/models beside the checkout")
    return d
