"""What the wheel ships and whom it installs for: the license, one version, Python 3.11 and newer."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from openrouter_attribution import __version__

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--wheel-dir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    return next(out.glob("openrouter_attribution-*.whl"))


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        return email.message_from_bytes(archive.read(f"openrouter_attribution-{__version__}.dist-info/METADATA"))


def test_the_wheel_ships_the_license(wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read(f"openrouter_attribution-{__version__}.dist-info/licenses/LICENSE")
    assert shipped == (ROOT / "LICENSE").read_bytes()
    assert shipped.startswith(b"MIT License")


def test_the_wheel_ships_the_package_and_nothing_else(wheel):
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert tops == {"openrouter_attribution", f"openrouter_attribution-{__version__}.dist-info"}


def test_metadata_says_the_version_license_and_pythons(wheel):
    metadata = _metadata(wheel)
    assert metadata["Version"] == __version__  # read from the package: one place to change it
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers = metadata.get_all("Classifier")
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in (11, 12, 13)} <= set(classifiers)
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert "agents" in metadata.get_all("Provides-Extra")


def test_pip_refuses_an_unsupported_python_with_the_package_requirement(wheel, tmp_path):
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index", "--python-version", "3.10",
         "--only-binary=:all:", "--target", str(tmp_path / "target"), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode != 0
    assert "requires a different Python: 3.10.0 not in '>=3.11'" in install.stderr
