"""The client CLI end to end against a real hub process, a real rclone and a pseudo terminal.

Tests in this module run in file order and share one hub (``module_hub``) and one config
dir: login → whoami → ls → creds --write (creates the dataset) → rclone writes → commit →
ls/info/edit → creds in every format (env and rclone outputs used by a real rclone) →
rclone-config (flags and interactive) → rm; then every error case; then a grep of all
output for the hub token and the S3 secrets.

Every ``dshub`` run uses ``PYTHON_KEYRING_BACKEND=keyring.backends.fail.Keyring`` (the
0600 file fallback) and a temporary ``DSHUB_CONFIG_DIR`` and ``HOME``: no test touches a
real keyring or the user's rclone config.
"""

from __future__ import annotations

import configparser
import hashlib
import http.server
import json
import os
import select
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dshub.api.client import HubClient
from dshub.models import (
    Dataset,
    DatasetList,
    FileList,
    ManifestEntry,
    ReadGrant,
    UploadSession,
    User,
    VersionSummary,
)

pytestmark = pytest.mark.integration

DATA = b"hello dshub\n" * 100


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Ctx:
    hub: Any  # conftest.HubProcess
    token: str
    bob_token: str
    tmp: Path
    rclone: str
    outputs: list[tuple[list[str], str, str]] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)  # S3 secrets handed out
    asked_for_secrets: set[int] = field(default_factory=set)  # indexes of outputs that may show them
    session: dict[str, Any] = field(default_factory=dict)

    @property
    def cfg(self) -> Path:
        return self.tmp / "cfg"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_", "PYTHON_KEYRING"))}
        env.update(
            DSHUB_CONFIG_DIR=str(self.cfg),
            PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
            HOME=str(self.tmp / "home"),
            XDG_CONFIG_HOME=str(self.tmp / "home" / ".config"),
            DSHUB_RCLONE=self.rclone,
        )
        env.update(extra)
        return env

    def run(
        self, *args: str, input: str | None = None, secrets_ok: bool = False, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``dshub ARGS``; record stdout/stderr for the final secret grep."""
        res = subprocess.run(
            [sys.executable, "-m", "dshub.cli.main", *args],
            env=self.env(**env), input=input, capture_output=True, text=True, timeout=120,
        )
        if secrets_ok:
            self.asked_for_secrets.add(len(self.outputs))
        self.outputs.append((list(args), res.stdout, res.stderr))
        return res

    def ok(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        res = self.run(*args, **kw)
        assert res.returncode == 0, f"dshub {' '.join(args)} → {res.returncode}\n{res.stdout}\n{res.stderr}"
        return res

    def json(self, *args: str, **kw: Any) -> Any:
        res = self.ok(*args, "--json", **kw)
        return json.loads(res.stdout)  # exactly one document: json.loads fails on trailing text


@pytest.fixture(scope="module")
def ctx(module_hub, tmp_path_factory, rclone_bin) -> Ctx:
    h = module_hub()
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "home").mkdir()
    return Ctx(hub=h, token=h.create_user("alice"), bob_token=h.create_user("bob"), tmp=tmp, rclone=rclone_bin)


def rclone_run(ctx: Ctx, args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env["RCLONE_CONFIG"] = os.devnull
    env.update(env_extra)
    return subprocess.run([ctx.rclone, *args, "--retries", "1", "--low-level-retries", "1"],
                          env=env, capture_output=True, text=True, timeout=60)


def env_from_exports(text: str) -> dict[str, str]:
    """Evaluate ``export`` lines in a real shell and return the variables they set."""
    script = text + "\nenv -0"
    out = subprocess.run(["sh", "-c", script], capture_output=True, env={}, check=True).stdout
    pairs = (item.split(b"=", 1) for item in out.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode() for k, v in pairs if k.startswith((b"RCLONE_", b"AWS_"))}


def run_pty(ctx: Ctx, args: list[str], script: list[tuple[str, str]], timeout: float = 60) -> tuple[int, str]:
    """Run ``dshub ARGS`` on a pseudo terminal; for each (expected, answer) wait for the text, then type."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()

    def controlling_tty() -> None:
        # A new session whose controlling terminal is the pty, so getpass (hidden input)
        # talks to it through /dev/tty like it would for a user.
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "dshub.cli.main", *args],
        stdin=slave, stdout=slave, stderr=slave, env=ctx.env(TERM="dumb", NO_COLOR="1"), close_fds=True,
        preexec_fn=controlling_tty,
    )
    os.close(slave)
    buf = b""
    pending = list(script)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                buf += chunk
            if pending and pending[0][0].encode() in buf:
                expected, answer = pending.pop(0)
                buf_mark = buf.rfind(expected.encode())
                buf = buf[:buf_mark] + b"<" + expected.encode() + b">" + buf[buf_mark + len(expected):]
                os.write(master, answer.encode() + b"\r")
            if proc.poll() is not None and not r:
                break
        code = proc.wait(timeout=10)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    text = buf.decode(errors="replace")
    ctx.outputs.append((args, text, ""))
    assert not pending, f"prompts not seen: {pending}\n{text}"
    return code, text


# --- the happy path -----------------------------------------------------------------------


def test_login_whoami(ctx: Ctx) -> None:
    res = ctx.ok("login", "--hub", ctx.hub.url + "/", "--token", "-", input=ctx.token + "\n")
    assert "token stored in" in res.stderr and "0600" in res.stderr
    assert f"Logged in to {ctx.hub.url} as alice" in res.stderr
    assert res.stdout == ""
    tokens = ctx.cfg / "tokens.json"
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert stat.S_IMODE(ctx.cfg.stat().st_mode) == 0o700
    assert User.model_validate(ctx.json("whoami")).name == "alice"
    res = ctx.ok("whoami")
    assert res.stdout.strip() == "alice"
    # --json on login too: one document, the User.
    assert User.model_validate(ctx.json("login", "--token", "-", input=ctx.token)).name == "alice"


def test_login_interactive_on_a_terminal(ctx: Ctx) -> None:
    code, text = run_pty(
        # getpass switches echo off and flushes pending input (TCSAFLUSH) before it writes the
        # final " " of the prompt: wait for that space, or the token would be echoed and lost.
        ctx, ["login", "--profile", "tty", "--hub", ctx.hub.url], [(f"Token for {ctx.hub.url}: ", ctx.token)]
    )
    assert code == 0, text
    assert "Logged in" in text and "alice" in text
    assert ctx.token not in text  # typed without echo
    assert ctx.ok("whoami", "--profile", "tty").stdout.strip() == "alice"


def test_ls_empty(ctx: Ctx) -> None:
    listing = DatasetList.model_validate(ctx.json("ls"))
    assert listing.items == [] and listing.total == 0
    assert "No datasets" in ctx.ok("ls").stderr


def test_creds_write_creates_dataset_and_rclone_uploads(ctx: Ctx) -> None:
    sess = UploadSession.model_validate(ctx.json("creds", "taxi", "--write", secrets_ok=True))
    assert sess.credentials is not None and (sess.owner, sess.name, sess.version) == ("alice", "taxi", None)
    ctx.secrets.append(sess.credentials.secret_access_key)
    ctx.session["id"] = sess.id

    # The env format drives a real rclone: write into the prefix, then list it.
    res = ctx.ok("creds", "taxi", "--write", "--format", "env", secrets_ok=True)
    assert "resumed upload session" in res.stderr
    env = env_from_exports(res.stdout)
    assert env["RCLONE_CONFIG_DSHUB_NO_CHECK_BUCKET"] == "true"
    src = ctx.tmp / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(DATA)
    (src / "sub" / "b.txt").write_bytes(DATA[:10])
    dest = f"dshub:{sess.location.bucket}/{sess.location.prefix.strip('/')}/"
    up = rclone_run(ctx, ["copy", str(src), dest], env)
    assert up.returncode == 0, up.stderr
    listed = rclone_run(ctx, ["ls", dest], env)
    assert listed.returncode == 0, listed.stderr
    assert "a.txt" in listed.stdout and "sub/b.txt" in listed.stdout

    with HubClient(ctx.hub.url, ctx.token) as c:
        files = [
            ManifestEntry(path="a.txt", size=len(DATA), md5=hashlib.md5(DATA).hexdigest()),
            ManifestEntry(path="sub/b.txt", size=10, md5=hashlib.md5(DATA[:10]).hexdigest()),
        ]
        assert c.commit_session(sess.id, files).version == 1


def test_ls_datasets_and_files(ctx: Ctx) -> None:
    listing = DatasetList.model_validate(ctx.json("ls"))
    [ds] = listing.items
    assert (ds.full_name, ds.latest_version, ds.file_count) == ("alice/taxi", 1, 2)
    table = ctx.ok("ls").stdout
    assert "taxi" in table and "alice" in table and "private" in table and "v1" in table and "1.2 kB" in table

    top = FileList.model_validate(ctx.json("ls", "taxi"))
    assert [(e.path.rstrip("/"), e.is_dir) for e in top.items] == [("sub", True), ("a.txt", False)]
    assert "sub/" in ctx.ok("ls", "alice/taxi@v1").stdout

    rec = FileList.model_validate(ctx.json("ls", "taxi", "-r"))
    assert sorted(e.path for e in rec.items) == ["a.txt", "sub/b.txt"]
    sub = FileList.model_validate(ctx.json("ls", "taxi:sub"))
    assert [e.path for e in sub.items] == ["sub/b.txt"]
    tree = ctx.ok("ls", "taxi", "--tree").stdout
    assert "alice/taxi@v1" in tree and "b.txt" in tree

    # --limit: never more than shown, and the rest is announced.
    one = FileList.model_validate(ctx.json("ls", "taxi", "-r", "--limit", "1"))
    assert len(one.items) == 1 and one.next_cursor
    assert "more entries" in ctx.ok("ls", "taxi", "-r", "-n", "1").stderr


def test_info(ctx: Ctx) -> None:
    doc = ctx.json("info", "taxi")
    assert Dataset.model_validate(doc["dataset"]).full_name == "alice/taxi"
    versions = [VersionSummary.model_validate(v) for v in doc["versions"]]
    assert [(v.version, v.file_count, v.uploader) for v in versions] == [(1, 2, "alice")]
    text = ctx.ok("info", "alice/taxi").stdout
    assert "dshub download alice/taxi@v1" in text
    assert 'dshub.open_dataset("alice/taxi@v1")' in text


def test_edit(ctx: Ctx) -> None:
    ds = Dataset.model_validate(
        ctx.json("edit", "taxi", "--description", "NYC taxi trips", "--tag", "nyc", "--tag", "draft",
                 "--license", "CC-BY-4.0", "--public")
    )
    assert (ds.description, ds.tags, ds.license, ds.visibility.value) == (
        "NYC taxi trips", ["nyc", "draft"], "CC-BY-4.0", "public")
    ds = Dataset.model_validate(ctx.json("edit", "alice/taxi", "--untag", "draft", "--tag", "transport"))
    assert ds.tags == ["nyc", "transport"]
    assert "Updated alice/taxi" in ctx.ok("edit", "taxi", "--private").stderr
    res = ctx.run("edit", "taxi")
    assert res.returncode == 2 and "nothing to change" in res.stderr


def test_creds_read_every_format(ctx: Ctx) -> None:
    grant = ReadGrant.model_validate(ctx.json("creds", "taxi", secrets_ok=True))
    assert (grant.version, grant.credentials.secret_access_key != "") == (1, True)
    ctx.secrets.append(grant.credentials.secret_access_key)
    same = ReadGrant.model_validate(json.loads(ctx.ok("creds", "taxi@v1", "--format", "json", secrets_ok=True).stdout))
    ctx.secrets.append(same.credentials.secret_access_key)

    table = ctx.ok("creds", "alice/taxi", secrets_ok=True).stdout
    for label in ("endpoint", "bucket", "prefix", "region", "access key id", "secret access key",
                  "session token", "expires"):
        assert label in table
    assert 'eval "$(dshub creds alice/taxi --format env --remote dshub)"' in table
    assert "rclone ls dshub:" in table

    # env → a real rclone lists the version.
    env_out = ctx.ok("creds", "taxi", "--format", "env", secrets_ok=True).stdout
    env = env_from_exports(env_out)
    ctx.secrets.append(env["AWS_SECRET_ACCESS_KEY"])
    path = env_out.strip().splitlines()[-1].split()[-1]  # "# then: rclone ls dshub:bucket/prefix/"
    listed = rclone_run(ctx, ["ls", path], env)
    assert listed.returncode == 0, listed.stderr
    assert "a.txt" in listed.stdout and "sub/b.txt" in listed.stdout
    cat = rclone_run(ctx, ["cat", path + "a.txt"], env)
    assert cat.stdout.encode() == DATA
    denied = rclone_run(ctx, ["copyto", str(ctx.tmp / "src" / "a.txt"), path + "new.txt"], env)
    assert denied.returncode != 0  # read credentials cannot write

    # rclone → a config section a real rclone reads from a file.
    section = ctx.ok("creds", "taxi", "--format", "rclone", "--remote", "ro", secrets_ok=True).stdout
    conf = ctx.tmp / "section.conf"
    conf.write_text(section)
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(section)
    ctx.secrets.append(cp["ro"]["secret_access_key"])
    res = subprocess.run([ctx.rclone, "--config", str(conf), "ls", f"ro:{grant.location.bucket}/{grant.location.prefix.strip('/')}/"],
                         capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")})
    assert res.returncode == 0 and "a.txt" in res.stdout, res.stderr

    aws = ctx.ok("creds", "taxi", "--format", "aws", secrets_ok=True).stdout
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(aws)
    assert cp["dshub"]["endpoint_url"].startswith("http://127.0.0.1:")  # one endpoint per grant
    ctx.secrets.append(cp["dshub"]["aws_secret_access_key"])

    proc = json.loads(ctx.ok("creds", "taxi", "--format", "credential-process", secrets_ok=True).stdout)
    assert proc["Version"] == 1 and set(proc) >= {"AccessKeyId", "SecretAccessKey", "Expiration"}
    assert proc["Expiration"].endswith("Z")
    ctx.secrets.append(proc["SecretAccessKey"])


OTHER_REMOTES = "[gdrive]\ntype = drive\nscope = drive\n\n[local]\ntype = local\n"


def test_rclone_config_with_flags(ctx: Ctx) -> None:
    conf = ctx.tmp / "rclone.conf"
    conf.write_text(OTHER_REMOTES)
    doc = ctx.json("rclone-config", "taxi", "--remote", "taxi-ro", "--config", str(conf), "--region", "eu-west-1")
    assert doc["remote"] == "taxi-ro" and doc["updated"] is False and doc["access"] == "read"
    assert doc["remote_path"].startswith("taxi-ro:") and doc["remote_path"].endswith("/")
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    text = conf.read_text()
    assert text.startswith(OTHER_REMOTES)
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(text)
    assert cp["taxi-ro"]["region"] == "eu-west-1" and cp["taxi-ro"]["no_check_bucket"] == "true"
    ctx.secrets.append(cp["taxi-ro"]["secret_access_key"])
    assert "secret" not in json.dumps(doc).lower() or cp["taxi-ro"]["secret_access_key"] not in json.dumps(doc)
    res = subprocess.run([ctx.rclone, "--config", str(conf), "ls", doc["remote_path"]],
                         capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")})
    assert res.returncode == 0 and "a.txt" in res.stdout, res.stderr

    # Again: updated in place, other remotes still byte-identical, human next steps.
    res = ctx.ok("rclone-config", "taxi", "--remote", "taxi-ro", "--config", str(conf))
    assert "Updated rclone remote 'taxi-ro'" in res.stderr
    assert f"rclone --config {conf} ls taxi-ro:" in res.stdout
    text = conf.read_text()
    assert text.startswith(OTHER_REMOTES) and text.count("[taxi-ro]") == 1


def test_rclone_config_interactive(ctx: Ctx) -> None:
    conf = ctx.tmp / "home" / ".config" / "rclone" / "rclone.conf"  # rclone's default here
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(OTHER_REMOTES)
    code, text = run_pty(
        ctx,
        ["rclone-config", "taxi"],
        [("rclone remote name", ""), ("S3 region", "us-east-1"), ("S3 endpoint", "")],
    )
    assert code == 0, text
    assert "dshub-taxi" in text and "rclone ls dshub-taxi:" in text
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(conf.read_text())
    assert set(cp.sections()) == {"gdrive", "local", "dshub-taxi"}
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    ctx.secrets.append(cp["dshub-taxi"]["secret_access_key"])
    ctx.asked_for_secrets.add(len(ctx.outputs) - 1)


def test_doctor(ctx: Ctx) -> None:
    doc = ctx.json("doctor")
    assert doc["ok"] is True
    assert {c["name"] for c in doc["checks"]} >= {"rclone", "keyring", "hub", "clock", "token"}
    res = ctx.ok("doctor")
    assert "rclone" in res.stdout and "clock" in res.stdout
    bad = ctx.run("doctor", DSHUB_TOKEN="nope")
    assert bad.returncode == 1 and "FAIL token" in bad.stdout


def test_rm(ctx: Ctx) -> None:
    ctx.ok("creds", "scratch", "--write", "--format", "json", secrets_ok=True)
    res = ctx.run("rm", "scratch")  # stdin is not a terminal: refuse
    assert res.returncode == 2 and "--yes" in res.stderr
    assert Dataset.model_validate(ctx.json("rm", "scratch", "--yes")).name == "scratch"
    assert ctx.run("info", "scratch").returncode == 4
    code, text = run_pty(ctx, ["rm", "taxi"], [("Delete alice/taxi", "n")])
    assert code == 1 and "Aborted" in text
    assert ctx.ok("info", "taxi").returncode == 0


# --- errors ---------------------------------------------------------------------------------


def test_error_hub_unreachable(ctx: Ctx) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    res = ctx.run("whoami", DSHUB_HUB_URL=url, DSHUB_TOKEN="x")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"Error: cannot reach hub at {url}: connection failed; is the hub running? check DSHUB_HUB_URL"
    ]
    res = ctx.run("ls", DSHUB_HUB_URL="localhost:8080", DSHUB_TOKEN="x")
    assert res.returncode == 2 and "not an http(s) URL" in res.stderr


def test_error_not_logged_in(ctx: Ctx) -> None:
    res = ctx.run("ls", DSHUB_CONFIG_DIR=str(ctx.tmp / "empty-cfg"))
    assert res.returncode == 3 and "dshub login" in res.stderr and "Traceback" not in res.stderr
    res = ctx.run("whoami", DSHUB_CONFIG_DIR=str(ctx.tmp / "empty-cfg"), DSHUB_HUB_URL=ctx.hub.url)
    assert res.returncode == 3 and "DSHUB_TOKEN" in res.stderr


def test_error_token_rejected(ctx: Ctx) -> None:
    bogus = "dsh_bogus_token_value_1234567890"
    res = ctx.run("ls", DSHUB_TOKEN=bogus)
    assert res.returncode == 3
    # The token came from DSHUB_TOKEN: that is what the hint names, not `dshub login`.
    assert res.stderr.strip() == (
        f"Error: token rejected by {ctx.hub.url}: DSHUB_TOKEN holds the rejected token; "
        "set it to a valid one, or unset it to use your stored login"
    )
    # A stored login of profile al2 whose token was revoked: log in again, on that profile.
    token = ctx.hub.create_token("alice")
    ctx.ok("login", "--profile", "al2", "--hub", ctx.hub.url, "--token", "-", input=token)
    ctx.hub.revoke_token(token)
    res = ctx.run("ls", "--profile", "al2")
    assert res.returncode == 3
    assert res.stderr.strip() == f"Error: token rejected by {ctx.hub.url}: run `dshub login --profile al2` with a valid token"
    res = ctx.run("login", "--token", "-", input=bogus)
    assert res.returncode == 3
    res = ctx.run("--debug", "whoami", DSHUB_TOKEN=bogus)  # traceback on request, still no token
    assert res.returncode != 0 and "Traceback" in res.stderr and bogus not in res.stderr
    assert "Traceback" not in ctx.run("whoami", DSHUB_TOKEN=bogus).stderr


def test_error_not_found_and_invalid_name(ctx: Ctx) -> None:
    res = ctx.run("info", "alice/nope")
    assert res.returncode == 4 and res.stderr.startswith("Error: ") and len(res.stderr.strip().splitlines()) == 1
    assert ctx.run("ls", "alice/nope").returncode == 4
    assert ctx.run("creds", "alice/nope").returncode == 4
    assert ctx.run("info", "taxi@v9").returncode == 4
    res = ctx.run("info", "Bad Name!")
    assert res.returncode == 2 and "invalid dataset name" in res.stderr
    assert ctx.run("creds", "taxi@v1", "--write").returncode == 2
    assert ctx.run("creds", "taxi", "--format", "yaml").returncode == 2


def test_error_permission_denied(ctx: Ctx) -> None:
    ctx.ok("edit", "taxi", "--public")
    res = ctx.run("edit", "alice/taxi", "--description", "mine now", DSHUB_TOKEN=ctx.bob_token)
    assert res.returncode == 1 and "permission denied" in res.stderr
    res = ctx.run("rm", "alice/taxi", "--yes", DSHUB_TOKEN=ctx.bob_token)
    assert res.returncode == 1 and "permission denied" in res.stderr
    # Bob can read the public dataset though.
    assert ReadGrant.model_validate(ctx.json("creds", "alice/taxi", DSHUB_TOKEN=ctx.bob_token, secrets_ok=True))


class _Garbage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b"<html><body>It works!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


def test_error_hub_returns_garbage(ctx: Ctx) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        res = ctx.run("whoami", DSHUB_HUB_URL=url, DSHUB_TOKEN="x")
        assert res.returncode == 1 and "unexpected response" in res.stderr and "Traceback" not in res.stderr
        res = ctx.run("login", "--hub", url, "--token", "-", input="x")
        assert res.returncode == 1 and "unexpected response" in res.stderr
    finally:
        server.shutdown()


def test_logout(ctx: Ctx) -> None:
    assert "Logged out" in ctx.ok("logout").stderr
    res = ctx.run("ls")
    assert res.returncode == 3
    # Log back in so the final cleanup test can run.
    ctx.ok("login", "--token", "-", input=ctx.token)


def test_final_rm(ctx: Ctx) -> None:
    ctx.ok("edit", "taxi", "--private")
    assert "Deleted alice/taxi" in ctx.ok("rm", "taxi", "--yes").stderr
    assert DatasetList.model_validate(ctx.json("ls")).items == []


def test_no_secret_anywhere(ctx: Ctx) -> None:
    """The hub token never appears; S3 secrets only where the user asked for them."""
    assert len(ctx.outputs) > 50 and ctx.secrets
    needles = [ctx.token, ctx.bob_token]
    for i, (args, out, err) in enumerate(ctx.outputs):
        for tok in needles:
            assert tok not in out and tok not in err, f"token in output of dshub {args}"
        if i not in ctx.asked_for_secrets:
            for s in ctx.secrets:
                assert s not in out and s not in err, f"S3 secret in output of dshub {args}"
    for p in ctx.cfg.rglob("*"):
        if p.is_file() and p.name != "tokens.json":
            text = p.read_text(errors="replace")
            assert all(t not in text for t in needles + ctx.secrets), p
    log = ctx.hub.log()
    assert all(t not in log for t in needles + ctx.secrets), "secret in the hub's log"
