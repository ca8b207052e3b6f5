from __future__ import annotations

import os
from pathlib import Path

import pytest

from facecompare import Settings, Verifier

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).parent.parent / "examples"
SHARED = Path(os.environ.get("FACECOMPARE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    if SHARED.is_dir():
        return
    skip = pytest.mark.skip(reason=f"../shared/data is absent (looked in {SHARED}; set FACECOMPARE_SHARED_DATA)")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def verifier() -> Verifier:
    v = Verifier(Settings())
    v.warm()
    return v


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED
