"""Upload → download → cat through the real CLI, a real hub and its S3 endpoints:
awkward names round-trip exactly, bad input is refused with nothing published."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import blake3
import pytest

from tests.conftest import HubFactory
from tests.integration.transfer_util import User, kill_while_uploading, new_user, tree_digest

pytestmark = pytest.mark.integration

NFC = unicodedata.normalize("NFC", "café-ü")
NFD = unicodedata.normalize("NFD", "café-ü")
WEIRD = {
    "with space/a b.txt": b"spaces\n",
    f"{NFC}.txt": b"nfc\n",
    f"{NFD}.txt": b"nfd - a different file with a different name\n",
    "hash#pct%q?.csv": b"a,b\n1,2\n",
    "-leading-dash": b"dash\n",
    "--help": b"not a flag\n",
    "日本語/データ.bin": os.urandom(3000),
    "/".join(f"d{i}" for i in range(30)) + "/deep.txt": b"deep\n",
    "plus+and=equals&amp;.txt": b"x",
    "quote'and\"double.txt": b"q",
}


@pytest.fixture(scope="module")
def alice(module_hub: HubFactory, tmp_path_factory: pytest.TempPathFactory) -> User:
    h = module_hub()
    return new_user(h, "alice", tmp_path_factory.mktemp("alice"))


def _write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def test_weird_names_round_trip(alice: User, tmp_path: Path) -> None:
    src = _write(tmp_path / "Weird Names", WEIRD)
    assert len(os.listdir(src)) == len({k.split("/")[0] for k in WEIRD})  # NFC and NFD are two files
    (src / "empty-dir").mkdir()
    (src / "link").symlink_to(src / "--help")

    r = alice.run("upload", str(src), "--description", "awkward names", "--tag", "test")
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "weird-names@v1" in err  # default name: normalised folder name
    assert "empty folder" in err and "empty-dir" in err
    assert "symbolic link" in err and "link" in err

    dest = tmp_path / "down"
    res = alice.run_json("download", "alice/weird-names", str(dest))
    assert res["files"] == len(WEIRD) and res["fetched_files"] == len(WEIRD)
    assert tree_digest(dest) == tree_digest(src)
    assert not (dest / "link").exists() and not (dest / "empty-dir").exists()

    # Re-runs: nothing to send, nothing to fetch.
    again = alice.run_json("upload", str(src))
    assert again["status"] == "up_to_date" and again["version"] == 1
    res2 = alice.run_json("download", "alice/weird-names", str(dest))
    assert res2["fetched_files"] == 0 and res2["skipped_files"] == len(WEIRD)

    for rel in ("hash#pct%q?.csv", f"{NFD}.txt", "--help", "日本語/データ.bin"):
        data = WEIRD[rel]
        c = alice.run("cat", f"weird-names:{rel}")
        assert c.returncode == 0, c.stderr.decode()
        assert c.stdout == data, rel


def test_large_files_take_their_md5_from_rclone(alice: User, tmp_path: Path) -> None:
    """Files averaging >= 64 KiB: the manifest's MD5s are the ones rclone checked while
    sending (its debug log), not a second read; they are right for awkward names too, are
    remembered for the next run, and the debug log holds no secret."""
    files = {
        "big/a.bin": os.urandom(300_000),
        f"{NFD}/b.bin": os.urandom(200_000),
        "hash#pct%q?.bin": os.urandom(100_000),
        "small.txt": b"tiny\n",
    }
    src = _write(tmp_path / "large", files)
    log = tmp_path / "rclone.log"
    r = alice.run("upload", str(src), "alice/large", env=alice.env(DSHUB_RCLONE_LOG=str(log)))
    assert r.returncode == 0, r.stderr.decode()

    reported = {}
    for line in log.read_text().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # DSHUB_RCLONE_LOG also separates the runs it records
        if m := re.fullmatch(r"md5 = ([0-9a-f]{32}) OK", obj.get("msg", "")):
            reported[obj["object"]] = m.group(1)
    want = {rel: hashlib.md5(data).hexdigest() for rel, data in files.items()}
    assert reported == want  # rclone reported every file, under dshub's own names
    with alice.api() as c:
        manifest = [json.loads(line) for line in c.get("/datasets/alice/large/versions/1/manifest").text.splitlines()]
    assert {e["path"]: e["md5"] for e in manifest} == want
    # BLAKE3 (what downloads verify) is dshub's own, from one read of each file.
    assert {e["path"]: e["blake3"] for e in manifest} == {
        rel: blake3.blake3(data).hexdigest() for rel, data in files.items()
    }
    text = log.read_text()
    assert alice.token not in text and not re.search(r"\b[0-9a-f]{40}\b", text)  # no token, no secret key

    # The next run needs no hashing: the MD5s are in the cache, keyed by size/mtime/inode.
    cached = "".join(p.read_text() for p in (alice.home / "cache" / "md5").glob("*.jsonl"))
    assert all(md5 in cached for md5 in want.values())
    assert alice.run_json("upload", str(src), "alice/large")["status"] == "up_to_date"
    dest = tmp_path / "down"
    alice.run_json("download", "alice/large", str(dest))  # verifies every file against the manifest
    assert tree_digest(dest) == tree_digest(src)


def test_single_file_and_filters(alice: User, tmp_path: Path) -> None:
    src = _write(
        tmp_path / "data",
        {"2022/01.csv": b"jan\n", "2022/02.csv": b"feb\n", "notes.txt": b"n", "tmp/x.csv": b"t"},
    )
    one = alice.run_json("upload", str(src / "notes.txt"), "single")
    assert one["files"] == 1 and one["ref"] == "alice/single@v1"
    assert alice.run("cat", "alice/single:notes.txt").stdout == b"n"

    res = alice.run_json("upload", str(src), "filtered", "--include", "*.csv", "--exclude", "tmp/**")
    assert res["files"] == 2
    dest = tmp_path / "d"
    got = alice.run_json("download", "filtered", str(dest), "--include", "2022/01.csv")
    assert got["files"] == 1
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == ["01.csv"]


def test_download_conflicts_need_force(alice: User, tmp_path: Path) -> None:
    src = _write(tmp_path / "src", {"a.txt": b"original", "b.txt": b"bbb"})
    assert alice.run_json("upload", str(src), "conflicts")["version"] == 1
    dest = _write(tmp_path / "dest", {"a.txt": b"ORIGINAL", "keep.txt": b"mine"})  # same size, other content
    r = alice.run("download", "conflicts", str(dest))
    assert r.returncode == 1 and b"a.txt" in r.stderr and b"--force" in r.stderr
    assert (dest / "a.txt").read_bytes() == b"ORIGINAL" and not (dest / "b.txt").exists()
    res = alice.run_json("download", "conflicts", str(dest), "--force")
    assert res["fetched_files"] == 2
    assert (dest / "a.txt").read_bytes() == b"original" and (dest / "keep.txt").read_bytes() == b"mine"


def test_download_asks_for_a_read_grant_only_when_it_fetches(
    alice: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into an empty folder the grant is asked for while the manifest streams; a re-run
    with nothing to fetch asks for none; a folder missing one file asks once, to fetch it."""
    from dshub.api.client import HubClient
    from dshub.refs import parse_ref
    from dshub.transfer.download import download
    from tests.integration.library_util import CountingTransport

    src = _write(tmp_path / "src", {f"d/{i}.txt": f"file {i}\n".encode() for i in range(20)})
    assert alice.run_json("upload", str(src), "grants")["version"] == 1
    monkeypatch.setenv("DSHUB_CACHE_DIR", str(tmp_path / "cache"))
    dest = tmp_path / "dest"

    def grants_asked(**kw: object) -> int:
        counter = CountingTransport()
        with HubClient(alice.hub.url, alice.token, transport=counter) as client:
            download(client, parse_ref("alice/grants"), dest, **kw)  # type: ignore[arg-type]
        return sum(path.endswith("/credentials") for _, path, _ in counter.requests)

    assert grants_asked() == 1
    assert tree_digest(dest) == tree_digest(src)
    assert grants_asked() == 0
    (dest / "d" / "7.txt").unlink()
    assert grants_asked() == 1 and tree_digest(dest) == tree_digest(src)
    # Filters matching nothing: refused before anything is fetched, into an empty folder too.
    empty = tmp_path / "empty"
    with pytest.raises(Exception, match="no files"):
        with HubClient(alice.hub.url, alice.token) as client:
            download(client, parse_ref("alice/grants"), empty, include=["*.csv"])
    assert not empty.exists()


def test_upload_reads_ahead_while_scanning_but_scan_errors_come_first(
    alice: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the folder is scanned the upload reads the dataset and the latest manifest (a
    no-op re-run: those two GETs and nothing else; other jobs' sessions do not matter). A scan error is still
    reported first — over a bad token too — and leaves only GETs behind: nothing created,
    no session opened."""
    from dshub.api.client import HubClient
    from dshub.errors import UsageError
    from dshub.refs import parse_ref
    from dshub.transfer.upload import upload
    from tests.integration.library_util import CountingTransport

    monkeypatch.setenv("DSHUB_CACHE_DIR", str(tmp_path / "cache"))
    files = {f"d{i % 3}/{i}.txt": f"file {i}\n".encode() for i in range(40)}
    src = _write(tmp_path / "src", files)

    def run(token: str = alice.token, ref: str = "alice/ahead") -> tuple[str, list[tuple[str, str]]]:
        counter = CountingTransport()
        with HubClient(alice.hub.url, token, transport=counter) as client:
            try:
                status = upload(client, src, parse_ref(ref)).status
            except UsageError as e:
                status = f"usage: {e.message}"
        return status, [(m, p.removeprefix("/api/v1")) for m, p, _ in counter.requests]

    assert run()[0] == "committed"
    status, requests = run()
    assert status == "up_to_date"
    assert requests == [
        ("GET", "/datasets/alice/ahead"),
        ("GET", "/datasets/alice/ahead/versions/1/manifest"),
    ]
    # A file the scan refuses: the error, only reads made, v1 still the latest, no session.
    (src / "bad\x01name.txt").write_bytes(b"x")
    for token in (alice.token, "not-a-token"):
        status, requests = run(token)
        assert status.startswith("usage:") and "cannot be uploaded" in status
        assert {m for m, _ in requests} <= {"GET"}
    status, requests = run(ref="alice/ahead-new")  # a new dataset: not created either
    assert status.startswith("usage:") and {m for m, _ in requests} <= {"GET"}
    with alice.api() as c:
        assert c.get("/datasets/alice/ahead").json()["latest_version"] == 1
        assert c.get("/datasets/alice/ahead/sessions").json()["items"] == []
        assert c.get("/datasets/alice/ahead-new").status_code == 404
    # A changed file: the read-ahead manifest says "different", v2 holds the new bytes.
    (src / "bad\x01name.txt").unlink()
    (src / "d1" / "1.txt").write_bytes(b"changed, and longer than before\n")
    assert run()[0] == "committed"
    dest = tmp_path / "dest"
    alice.run_json("download", "alice/ahead@v2", str(dest))
    assert tree_digest(dest) == tree_digest(src)


def test_cat_errors_and_pipe(alice: User, tmp_path: Path) -> None:
    src = _write(tmp_path / "c", {"dir/big.txt": b"line\n" * 200_000})
    alice.run_json("upload", str(src), "catme")
    r = alice.run("cat", "catme:nope.txt")
    assert r.returncode == 4 and b"no file" in r.stderr
    r = alice.run("cat", "catme:dir")
    assert r.returncode == 4
    r = alice.run("cat", "catme")
    assert r.returncode == 2
    # A reader that leaves early is not an error.
    p = subprocess.run(
        [
            "bash",
            "-c",
            'set -o pipefail; "$@" | head -n 2',
            "_",
            *__import__("sys").argv[:0],
            *alice_cmd(),
            "cat",
            "catme:dir/big.txt",
        ],
        env=alice.env(),
        capture_output=True,
        timeout=60,
    )
    assert p.stdout == b"line\nline\n"
    assert p.returncode in (0, 141), p.stderr  # 141: bash reports head's SIGPIPE'd writer only with pipefail


def alice_cmd() -> list[str]:
    from tests.integration.transfer_util import DSHUB

    return list(DSHUB)


def test_bad_inputs_publish_nothing(alice: User, tmp_path: Path) -> None:
    r = alice.run("upload", str(tmp_path / "missing"), "bad")
    assert r.returncode == 2 and b"no such file" in r.stderr
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    r = alice.run("upload", str(tmp_path / "empty"), "bad")
    assert r.returncode == 2 and b"no files" in r.stderr
    long = _write(tmp_path / "long", {"ok.txt": b"1", "/".join(["x" * 200] * 5) + "/f.txt": b"2"})
    r = alice.run("upload", str(long), "bad")
    assert r.returncode == 2 and b"f.txt" in r.stderr and b"1024" in r.stderr or b"bytes" in r.stderr
    with alice.api() as c:
        assert c.get("/datasets/alice/bad").status_code == 404  # nothing created, nothing sent


def test_unreadable_file_as_unprivileged_user(alice: User) -> None:
    import shutil
    import tempfile

    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to switch to an unprivileged user")
    # pytest's tmp_path sits in a folder only root can enter: user nobody's files go to a
    # folder of their own that anyone may traverse.
    base = Path(tempfile.mkdtemp(prefix="dshub-nobody-"))
    try:
        os.chmod(base, 0o755)
        src = _write(base / "unr", {"ok.txt": b"1", "secret.txt": b"2", "sub/hidden.txt": b"3"})
        for p in [src, src / "sub", src / "ok.txt"]:
            os.chmod(p, 0o755)
        os.chmod(src / "secret.txt", 0o000)
        os.chmod(src / "sub" / "hidden.txt", 0o000)
        home = base / "nobody-home"
        home.mkdir()
        os.chown(home, 65534, 65534)
        env = alice.env(DSHUB_CONFIG_DIR=str(home), DSHUB_CACHE_DIR=str(home / "cache"), HOME=str(home))
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        # A checkout in a folder only its owner can enter (a clone under /root or in
        # `mktemp -d`) keeps user nobody from running its Python or importing dshub.
        probe = subprocess.run(
            [*as_nobody, sys.executable, "-c", "import dshub.cli.main"], env=env, capture_output=True, timeout=60
        )
        if probe.returncode != 0:
            why = probe.stderr.decode(errors="replace").strip().splitlines()[-1:]
            pytest.skip(f"user nobody cannot run this checkout's Python and dshub: {why}")
        r = subprocess.run(
            [*as_nobody, *alice_cmd(), "upload", str(src), "unreadable"], env=env, capture_output=True, timeout=60
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert r.returncode == 2, r.stderr
    assert b"secret.txt" in r.stderr and b"sub/hidden.txt" in r.stderr and b"nothing was sent" in r.stderr
    with alice.api() as c:
        assert c.get("/datasets/alice/unreadable").status_code == 404


def test_file_changing_during_upload(alice: User, tmp_path: Path) -> None:
    src = _write(tmp_path / "changing", {f"f{i:02d}.bin": os.urandom(200_000) for i in range(20)})
    proc = alice.popen("upload", str(src), "changing", "--bwlimit", "1M", "--transfers", "2")
    assert proc.stderr is not None
    for line in proc.stderr:
        if b"Uploading" in line:
            break
    with open(src / "f19.bin", "ab") as f:  # grows while rclone is sending
        f.write(b"more")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 5, err
    assert b"changed while uploading" in err and b"f19.bin" in err
    with alice.api() as c:
        assert c.get("/datasets/alice/changing/versions").json()["items"] == []
    # Once the files are stable the same command resumes and publishes.
    res = alice.run_json("upload", str(src), "changing")
    assert res["status"] == "committed" and res["skipped_files"] >= 1
    dest = tmp_path / "changing-down"
    alice.run_json("download", "changing", str(dest))
    assert tree_digest(dest) == tree_digest(src)


def test_file_removed_before_it_is_hashed_is_named(
    alice: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file deleted after rclone sent it but before dshub hashed it: the upload fails
    naming the file (not with a bare OSError), and nothing is published."""
    from dshub.api.client import HubClient
    from dshub.errors import TransferError
    from dshub.refs import parse_ref
    from dshub.transfer import session_run
    from dshub.transfer.upload import upload

    src = _write(tmp_path / "vanish", {f"f{i}.txt": f"{i}\n".encode() for i in range(5)})
    monkeypatch.setenv("DSHUB_CACHE_DIR", str(tmp_path / "cache"))
    real = session_run.hash_in_background

    class Vanishing:
        def __init__(self, *a: object, **kw: object) -> None:
            self.inner = real(*a, **kw)  # type: ignore[arg-type]

        def result(self) -> object:
            self.inner.result()
            (src / "f3.txt").unlink()
            raise FileNotFoundError(2, "No such file or directory", str(src / "f3.txt"))

        def close(self) -> None:
            self.inner.close()

    monkeypatch.setattr(session_run, "hash_in_background", Vanishing)
    with HubClient(alice.hub.url, alice.token) as client, pytest.raises(TransferError) as ei:
        upload(client, src, parse_ref("alice/vanish"))
    assert [(d.path, d.problem) for d in ei.value.details] == [("f3.txt", "deleted while uploading")]
    with alice.api() as c:
        assert c.get("/datasets/alice/vanish/versions").json()["items"] == []


def test_new_session_aborts_the_open_one(alice: User, tmp_path: Path) -> None:
    """`--new-session` aborts this job's own open session (an upload of the same folder that
    was interrupted), never another job's or tool's."""
    src = _write(tmp_path / "ns", {f"f{i}.bin": os.urandom(100_000) for i in range(4)})
    with alice.api() as c:
        assert c.post("/datasets", json={"name": "newsess"}).status_code == 201
        other = c.post("/datasets/alice/newsess/sessions", json={}).json()  # e.g. `dshub creds --write`
    kill_while_uploading(alice, "upload", str(src), "newsess", "--bwlimit", "100k", "--transfers", "1")
    with alice.api() as c:
        [own] = [s for s in c.get("/datasets/alice/newsess/sessions").json()["items"] if s["id"] != other["id"]]
    r = alice.run("upload", str(src), "newsess", "--new-session")  # no terminal to confirm on
    assert r.returncode == 2 and b"--yes" in r.stderr
    res = alice.run_json("upload", str(src), "newsess", "--new-session", "--yes")
    assert res["status"] == "committed" and res["resumed"] is False and res["session_id"] not in (own["id"], other["id"])
    with alice.api() as c:
        assert c.get(f"/sessions/{own['id']}").json()["state"] == "aborted"
        assert c.get(f"/sessions/{other['id']}").json()["state"] == "open"


def test_without_a_usable_rclone_nothing_is_created_or_written(alice: User, tmp_path: Path) -> None:
    """rclone is looked for on a thread while dshub scans and asks the hub; its absence still
    stops an upload before a dataset or session exists, and a download before dest is made."""
    src = _write(tmp_path / "no-rclone", {"a.txt": b"a\n"})
    env = alice.env(DSHUB_RCLONE=str(tmp_path / "missing" / "rclone"))
    r = alice.run("upload", str(src), "alice/no-rclone", env=env)
    err = r.stderr.decode()
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert r.returncode == 1 and len(errors) == 1 and "DSHUB_RCLONE" in errors[0], err
    assert alice.run("info", "alice/no-rclone").returncode == 4  # never created

    alice.run_json("upload", str(src), "alice/no-rclone")
    dest = tmp_path / "dest"
    r = alice.run("download", "alice/no-rclone", str(dest), env=env)
    assert r.returncode == 1 and "DSHUB_RCLONE" in r.stderr.decode() and not dest.exists()


def test_bad_options_are_refused_before_anything_is_created(alice: User, tmp_path: Path) -> None:
    """Every option is checked before the hub is asked to create or open anything: no
    dataset, no session, one line naming the option, exit 2 (rclone's help never shown)."""
    src = _write(tmp_path / "opts", {"a.txt": b"a"})
    bad = {
        "--bwlimit fast": ["--bwlimit", "fast"],
        "--bwlimit -1": ["--bwlimit", "-1"],
        "--transfers 0": ["--transfers", "0"],
        "51 tags": [a for i in range(51) for a in ("--tag", f"t{i}")],
        "a description over 10,000 characters": ["--description", "x" * 10_001],
    }
    for what, flags in bad.items():
        r = alice.run("upload", str(src), "badopts", *flags)
        err = r.stderr.decode()
        assert r.returncode == 2, (what, err)
        # At most Click's usage line and the error: never rclone's help, never "resume".
        assert len(err.strip().splitlines()) <= 4 and "Flags:" not in err and "resume" not in err, (what, err)
    assert "fast" in alice.run("upload", str(src), "badopts", "--bwlimit", "fast").stderr.decode()
    with alice.api() as c:
        assert c.get("/datasets/alice/badopts").status_code == 404
    # An existing dataset: no session opened, metadata unchanged.
    alice.run_json("upload", str(src), "goodopts", "--description", "kept")
    (src / "b.txt").write_bytes(b"b")
    r = alice.run("upload", str(src), "goodopts", "--bwlimit", "fast", "--description", "changed")
    assert r.returncode == 2, r.stderr
    with alice.api() as c:
        assert c.get("/datasets/alice/goodopts/sessions").json()["items"] == []
        assert c.get("/datasets/alice/goodopts").json()["description"] == "kept"


def test_library_upload_checks_options_too(alice: User, tmp_path: Path) -> None:
    from dshub.api.client import HubClient
    from dshub.errors import UsageError
    from dshub.refs import parse_ref
    from dshub.transfer.upload import UploadOptions, upload

    src = _write(tmp_path / "libopts", {"a.txt": b"a"})
    with HubClient(alice.hub.url, alice.token) as client:
        for opts in (UploadOptions(bwlimit="fast"), UploadOptions(transfers=0), UploadOptions(rclone_args=["--nope"])):
            with pytest.raises(UsageError):
                upload(client, src, parse_ref("alice/libopts"), options=opts)
    with alice.api() as c:
        assert c.get("/datasets/alice/libopts").status_code == 404
