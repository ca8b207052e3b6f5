"""``pip install facecompare`` without extras: the commands that run on this machine alone work, and each part that
needs an extra (facecompare/extras.py) stops with exit 2 and the pip command that installs it, never an
ImportError's traceback. In a fresh virtual environment holding the wheel and its dependencies only."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

pytestmark = [pytest.mark.slow, pytest.mark.install]


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> tuple[Path, dict]:
    """(the fresh environment's bin folder, the environment variables to run it with)."""
    out = tmp_path_factory.mktemp("extras")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = out.glob("facecompare-*.whl")
    env_dir = out / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    # the fresh environment alone (PYTHONPATH=src would make the source tree's packages visible)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("FACECOMPARE_")}
    subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    str(wheel)], check=True, capture_output=True, env=env)
    return env_dir / "bin", env


def run(bare, tmp_path, *argv: str) -> subprocess.CompletedProcess:
    bin_dir, env = bare
    return subprocess.run([str(bin_dir / "facecompare"), *argv], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)


def test_the_extras_are_not_installed_by_default(bare):
    bin_dir, env = bare
    probe = subprocess.run([str(bin_dir / "python"), "-c", "import importlib.util as u; print([m for m in ("
                            "'fastapi', 'uvicorn', 'starlette', 'argon2', 'dask', 'psycopg') if u.find_spec(m)])"],
                           capture_output=True, text=True, check=True, env=env)
    assert probe.stdout.strip() == "[]"


@pytest.mark.parametrize("argv, extra", [
    (["serve", "--port", "9"], "server"),
    (["api-key", "--name", "onboarding"], "server"),
    (["compare", str(EXAMPLES / "other_selfie.jpg"), str(EXAMPLES / "id_card.jpg"), "--queue-review",
      "--queue-no-match", "--review-store", "sqlite:///reviews.db"], "console"),
    (["review", "list", "--store", "sqlite:///reviews.db"], "console"),
    (["batch", "--selfie", str(EXAMPLES / "selfie.jpg"), "--documents", str(EXAMPLES), "--out", "out",
      "--engine", "dask", "--no-progress"], "batch"),
])
def test_a_part_without_its_extra_names_the_pip_command(bare, tmp_path, argv, extra):
    result = run(bare, tmp_path, *argv)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert f"pip install 'facecompare[{extra}]'" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"facecompare {argv[0]}: "), result.stderr


def test_collections_and_local_batches_need_no_extra(bare, tmp_path):
    store = "sqlite:///" + str(tmp_path / "c.db")
    assert run(bare, tmp_path, "collection", "create", "kyc", "--store", store).returncode == 0
    indexed = run(bare, tmp_path, "collection", "index", "kyc", str(EXAMPLES / "id_card.jpg"), "--store", store)
    assert indexed.returncode == 0 and '"FaceRecords"' in indexed.stdout, indexed.stderr[-2000:]
    batch = run(bare, tmp_path, "batch", "--selfie", str(EXAMPLES / "selfie.jpg"), "--documents", str(EXAMPLES),
                "--out", "out", "--workers", "1", "--no-progress")
    assert batch.returncode == 0, batch.stderr[-2000:]
    assert (tmp_path / "out" / "report.html").is_file()
