#!/usr/bin/env python3
"""`make demo`: dshub's main job end to end on one machine, in about a minute.

1. start a local hub in the background (temporary data dir, free port);
2. create a user and log in with an isolated config dir;
3. generate ~50 MB of New York taxi trip records (scripts/gen_taxi.py);
4. upload them, interrupt the first attempt part-way (Ctrl-C), run the same command again
   and watch it resume: only what is missing is sent;
5. list the dataset, download it elsewhere, verify it byte for byte;
6. open the dataset's web page (signed in through its form) and say how to browse it;
7. stop the hub.

Everything lives in .demo/ (removed by `make clean`). Environment knobs:
DEMO_SIZE_MB (default 50), DEMO_KEEP=1 keeps the hub running at the end.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # benchmarks/ beside scripts/: its wait for the hub
DEMO = REPO / ".demo"
BIN = Path(sys.executable).parent
DSHUB = [sys.executable, "-m", "dshub.cli.main"]
SIZE_MB = float(os.environ.get("DEMO_SIZE_MB", "50"))
T0 = time.monotonic()


def step(n: int, text: str) -> None:
    print(
        f"\n\033[1m[{time.monotonic() - T0:5.1f}s] {n}. {text}\033[0m"
        if sys.stdout.isatty()
        else f"\n[{time.monotonic() - T0:5.1f}s] {n}. {text}",
        flush=True,
    )


def say(text: str) -> None:
    print(f"   {text}", flush=True)


def show(cmd: list[str]) -> None:
    shown = ["dshub", *cmd[len(DSHUB) :]] if cmd[: len(DSHUB)] == DSHUB else cmd
    print("   $ " + " ".join(shown), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    show(cmd)
    res = subprocess.run(cmd, env=env, **kw)
    if res.returncode != 0:
        raise SystemExit(f"demo: command failed with exit status {res.returncode}: {' '.join(cmd)}")
    return res


def wait_for_hub(url: str, proc: subprocess.Popen, log: Path) -> None:  # type: ignore[type-arg]
    from benchmarks.servers import wait_for_hub as wait  # stdlib only, like this script

    try:
        wait(url, proc, log)
    except RuntimeError as e:
        raise SystemExit(f"demo: {e}") from None


def check_web_page(url: str, token: str) -> None:
    """Sign in through the page's form like a browser and open the dataset's page."""
    import re

    import httpx

    with httpx.Client(base_url=url, timeout=30) as web:
        form = web.get("/signin")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        if csrf is None:
            raise SystemExit("demo: the sign-in page has no form")
        web.post("/signin", data={"token": token, "csrf_token": csrf.group(1)})
        page = web.get("/datasets/demo/taxi-data")
        if page.status_code != 200 or "Signed in as" not in page.text:
            raise SystemExit(f"demo: the dataset page answered {page.status_code}")
        say(f"GET /datasets/demo/taxi-data: {page.status_code}, {page.headers.get('server-timing', '')}")


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    hub_dir, config_dir = DEMO / "hub", DEMO / "config"
    data, down = DEMO / "taxi-data", DEMO / "download" / "taxi-data"
    config_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_CONFIG_"))}
    env.update(
        DSHUB_CONFIG_DIR=str(config_dir), PYTHONUNBUFFERED="1", PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    )
    # The demo's login lives in its config dir, not in the desktop keyring.
    env["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    env["XDG_DATA_HOME"] = str(DEMO / "xdg-data")
    env["DSHUB_CACHE_DIR"] = str(DEMO / "cache")

    step(1, "Starting a local hub in the background")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = DEMO / "hub.log"
    cmd = [*DSHUB, "hub", "serve", "--port", str(port), "--data-dir", str(hub_dir)]
    show(cmd + ["&"])
    with open(log, "wb") as lf:
        hub = subprocess.Popen(cmd, env=env, stdout=lf, stderr=subprocess.STDOUT, start_new_session=True)
    ok = False
    try:
        wait_for_hub(url, hub, log)
        say(f"hub at {url}, data in {hub_dir.relative_to(REPO)}, log in {log.relative_to(REPO)}")

        step(2, "Creating user 'demo' and logging in (isolated config dir)")
        res = run(
            [*DSHUB, "hub", "create-user", "demo", "--data-dir", str(hub_dir)],
            env,
            capture_output=True,
            text=True,
        )
        token = res.stdout.strip().splitlines()[-1]
        show([*DSHUB, "login", "--hub", url, "--token", "-"])
        r = subprocess.run(
            [*DSHUB, "login", "--hub", url, "--token", "-"],
            env=env,
            input=token + "\n",
            text=True,
            capture_output=True,
        )
        if r.returncode != 0:
            # Fall back to the environment variables CI uses.
            say(f"login failed ({r.stderr.strip()}); using DSHUB_HUB_URL/DSHUB_TOKEN instead")
            env.update(DSHUB_HUB_URL=url, DSHUB_TOKEN=token)
        run([*DSHUB, "whoami"], env)

        step(3, f"Generating ~{SIZE_MB:g} MB of New York taxi trip records")
        run(
            [sys.executable, str(REPO / "scripts" / "gen_taxi.py"), str(data), "--size-mb", str(SIZE_MB)], env
        )
        files = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())
        say(f"{len(files)} files: {', '.join(files[:3])}, …")

        step(4, "Uploading, with a bandwidth limit so we can interrupt it part-way")
        cmd = [
            *DSHUB,
            "upload",
            str(data),
            "--bwlimit",
            "12M",
            "--description",
            "NYC taxi sample (demo)",
            "--tag",
            "demo",
        ]
        show(cmd)
        # rclone's own log tells us when some files are complete (no secrets in it).
        rlog = DEMO / "first-attempt-rclone.log"
        first = subprocess.Popen(cmd, env={**env, "DSHUB_RCLONE_LOG": str(rlog)}, start_new_session=True)
        deadline = time.monotonic() + 20
        while first.poll() is None and time.monotonic() < deadline:
            if rlog.exists() and rlog.read_text(errors="replace").count('"msg":"Copied') >= len(files) // 2:
                break
            time.sleep(0.1)
        say("pressing Ctrl-C (SIGINT) …")
        first.send_signal(signal.SIGINT)
        code = first.wait(60)
        say(f"first attempt exited with status {code} (130 = interrupted; the upload session is kept)")
        if code == 0:
            say("(it finished before the interrupt; nothing to resume this time)")

        step(5, "Running the same command again: it resumes and sends only what is missing")
        run([*DSHUB, "upload", str(data), "--description", "NYC taxi sample (demo)", "--tag", "demo"], env)

        step(6, "Listing")
        run([*DSHUB, "ls"], env)
        run([*DSHUB, "ls", "demo/taxi-data", "-r"], env)

        step(7, "Downloading it elsewhere, and streaming one file")
        run([*DSHUB, "download", "demo/taxi-data", str(down)], env)
        show([*DSHUB, "cat", "demo/taxi-data:2022/01.csv", "|", "head", "-3"])
        p = subprocess.Popen([*DSHUB, "cat", "demo/taxi-data:2022/01.csv"], env=env, stdout=subprocess.PIPE)
        assert p.stdout is not None
        for _ in range(3):
            print("   " + p.stdout.readline().decode().rstrip(), flush=True)
        p.stdout.close()
        p.wait()

        step(8, "Verifying the download byte for byte against the original")
        mismatch = [f for f in files if not filecmp.cmp(data / f, down / f, shallow=False)]
        extra = sorted({p.relative_to(down).as_posix() for p in down.rglob("*") if p.is_file()} - set(files))
        if mismatch or extra:
            raise SystemExit(f"demo: download differs: {mismatch[:5]} extra: {extra[:5]}")
        total = sum((data / f).stat().st_size for f in files)
        say(f"identical: {len(files)} files, {total / 1e6:.1f} MB")

        step(9, "The hub's web page: the same datasets in a browser")
        token_file = DEMO / "web-token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        check_web_page(url, token)
        say(f"list: {url}/   dataset: {url}/datasets/demo/taxi-data")
        say(f"sign in with the token in {token_file.relative_to(REPO)} (mode 0600): "
            f"`cat {token_file.relative_to(REPO)}` and paste it")
        ok = True
    finally:
        if os.environ.get("DEMO_KEEP") and ok:
            say(f"hub left running at {url} (pid {hub.pid}; stop it with `kill {hub.pid}`).")
            say(f"Browse it: open {url}/ and sign in with the token in {DEMO.relative_to(REPO)}/web-token.")
            say("Or use the CLI:")
            say(
                f"export DSHUB_CONFIG_DIR={config_dir} XDG_DATA_HOME={DEMO / 'xdg-data'} "
                "PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring"
            )
        else:
            step(10, "Stopping the hub")
            if hub.poll() is None:
                hub.send_signal(signal.SIGTERM)
                try:
                    hub.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(hub.pid, signal.SIGKILL)
                    hub.wait()
            say(f"hub stopped (exit status {hub.returncode})")
    print(f"\nDemo finished in {time.monotonic() - T0:.0f}s.", flush=True)
    if not os.environ.get("DEMO_KEEP"):
        print(
            "   Run `DEMO_KEEP=1 make demo` to keep the hub running and explore it with dshub"
            " or in a browser at its web page."
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
