"""The deployment files stay true to the hub: every setting they name exists, the unit
file is one systemd accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from dshub.hub.cli import hub_app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _serve_envvars() -> set[str]:
    cmd = typer.main.get_command(hub_app).commands["serve"]  # type: ignore[attr-defined]
    out: set[str] = set()
    for p in cmd.params:
        env = p.envvar
        out.update([env] if isinstance(env, str) else list(env or []))
    return out


@pytest.mark.parametrize("name", ["Containerfile", "dshub-hub.service", "hub.env.example"])
def test_every_setting_named_is_a_serve_option(name: str) -> None:
    text = (DEPLOY / name).read_text()
    named = set(re.findall(r"\bDSHUB_HUB_[A-Z0-9_]+", text))
    assert named, "the file names no setting"
    assert named <= _serve_envvars(), named - _serve_envvars()


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    dshub = Path(sys.executable).parent / "dshub"
    unit = (DEPLOY / "dshub-hub.service").read_text().replace("/opt/dshub/bin/dshub", str(dshub))
    (tmp_path / "dshub-hub.service").write_text(unit)
    res = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "dshub-hub.service")],
                         capture_output=True, text=True, timeout=60)
    problems = [line for line in (res.stdout + res.stderr).splitlines() if "dshub-hub.service" in line]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr
