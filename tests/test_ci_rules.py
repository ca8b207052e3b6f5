"""With CI set, a missing dependency (Chromium, SeaweedFS, ../shared/data) fails the run instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import skip_or_fail


@pytest.mark.parametrize("value,fails", [("true", True), ("1", True), ("", False), ("false", False), (None, False)])
def test_skip_or_fail_follows_ci(monkeypatch, value, fails):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception if fails else pytest.skip.Exception, match="Chromium is not installed"):
        skip_or_fail("Chromium is not installed")


@pytest.mark.parametrize("ci", [True, False])
def test_missing_shared_data_fails_the_collection_in_ci(tmp_path, ci):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["FACECOMPARE_SHARED_DATA"] = str(tmp_path / "absent")
    if ci:
        env["CI"] = "true"
    tests = Path(__file__).parent
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--co",
                          str(tests / "test_shared_data.py")], capture_output=True, text=True, env=env, cwd=tests.parent,
                         timeout=120)
    if ci:
        assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
        assert "../shared/data is absent" in run.stderr and "must run, not be skipped" in run.stderr
    else:  # collected, and skipped with the reason when run
        assert run.returncode == 0, run.stdout + run.stderr
