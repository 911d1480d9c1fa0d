"""CLI commands through the real error boundary (``dshub.cli.main.main``) against a fake hub.

The fake hub is an ``httpx.MockTransport`` behind a real ``HubClient``: fast tests of
rendering, ``--json`` shapes, exit codes, laziness of ``ls`` and the prompts.
"""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime, timedelta, timezone

import httpx
import keyring
import pytest
from keyring.backends import fail

from dshub.api.client import HubClient
from dshub.models import Dataset, DatasetList, FileList, ReadGrant, User

NOW = datetime.now(timezone.utc)
TOKEN = "tok-unit-SECRET"
SECRET = "s3-SECRET-value"


def ds(name: str, **kw) -> dict:
    d = {"id": name, "owner": "alice", "name": name, "created_at": NOW.isoformat(), "updated_at": NOW.isoformat(),
         "latest_version": 1, "size": 1500, "file_count": 3}
    d.update(kw)
    return d


class FakeHub:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.datasets = {"taxi": ds("taxi", tags=["a", "b"])}
        self.files = [{"path": f"f{i:03d}", "size": i} for i in range(250)]
        self.sessions: list[dict] = []

    def __call__(self, r: httpx.Request) -> httpx.Response:
        self.requests.append(r)
        p = r.url.path.removeprefix("/api/v1")
        if r.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "bad token"}})
        if p == "/whoami":
            return httpx.Response(200, json={"name": "alice"})
        if p == "/datasets":
            items = list(self.datasets.values())
            return httpx.Response(200, json={"items": items, "total": len(items), "page": 1, "page_size": 50})
        parts = p.strip("/").split("/")
        name = parts[2] if len(parts) > 2 else ""
        if name not in self.datasets:
            return httpx.Response(404, json={"error": {"code": "not_found", "message": f"dataset alice/{name} not found"}})
        d = self.datasets[name]
        if len(parts) == 3:
            if r.method == "PATCH":
                d.update(json.loads(r.content))
            if r.method == "DELETE":
                del self.datasets[name]
                return httpx.Response(204)
            return httpx.Response(200, json=d)
        if parts[3:] == ["sessions"]:
            return httpx.Response(200, json={"items": self.sessions})
        if parts[3:] == ["versions"]:
            return httpx.Response(200, json={"items": [{"version": 1, "size": 1500, "file_count": 3,
                                                        "created_at": NOW.isoformat(), "uploader": "alice"}]})
        if parts[3] == "versions" and len(parts) == 5:
            return httpx.Response(200, json={"dataset_id": "x", "owner": "alice", "name": name, "version": 1, "size": 1,
                                             "file_count": 1, "created_at": NOW.isoformat(), "uploader": "alice",
                                             "prefix": "datasets/x/v1/"})
        if parts[-1] == "files":
            limit = int(r.url.params["limit"])
            start = 0
            if r.url.params.get("cursor"):
                start = next(i for i, f in enumerate(self.files) if f["path"] == r.url.params["cursor"]) + 1
            page = self.files[start:start + limit]
            nxt = page[-1]["path"] if start + limit < len(self.files) else None
            return httpx.Response(200, json={"items": page, "next_cursor": nxt})
        if parts[-1] == "credentials":
            return httpx.Response(200, json={
                "owner": "alice", "name": name, "version": 1,
                "location": {"endpoint": "http://127.0.0.1:9", "bucket": "b", "prefix": "datasets/x/v1/"},
                "credentials": {"access_key_id": "AK", "secret_access_key": SECRET,
                                "expiry": (NOW + timedelta(hours=1)).isoformat()}})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no route"}})


@pytest.fixture
def hub(monkeypatch, tmp_path) -> FakeHub:
    fake = FakeHub()
    monkeypatch.setenv("DSHUB_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("DSHUB_HUB_URL", "http://hub.test")
    monkeypatch.setenv("DSHUB_TOKEN", TOKEN)
    monkeypatch.delenv("DSHUB_PROFILE", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())

    def resolve_client(profile=None, **kw):
        return HubClient("http://hub.test", TOKEN, transport=httpx.MockTransport(fake), retries=0)

    def connect(profile=None):
        from dshub.library.client import Client

        return Client("http://hub.test", TOKEN, transport=httpx.MockTransport(fake))

    monkeypatch.setattr("dshub.api.auth.resolve_client", resolve_client)
    monkeypatch.setattr("dshub.cli.common.connect", connect)
    yield fake
    keyring.set_keyring(previous)


def run(capsys, monkeypatch, *args: str, stdin: str = "", interactive: bool | None = None) -> tuple[int, str, str]:
    """Run ``dshub ARGS`` through ``main()``; return (exit code, stdout, stderr)."""
    from dshub.cli import main as cli_main

    monkeypatch.setattr(sys, "argv", ["dshub", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    if interactive is not None:
        monkeypatch.setattr("dshub.cli.output.Output.interactive", property(lambda self: interactive))
    code = 0
    try:
        cli_main.main()
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    return code, out, err


def test_ls_datasets_table_and_json(hub, capsys, monkeypatch):
    code, out, err = run(capsys, monkeypatch, "ls")
    assert code == 0 and "taxi" in out and "alice" in out and "1.5 kB" in out and "\x1b[" not in out
    code, out, _ = run(capsys, monkeypatch, "ls", "--json")
    assert DatasetList.model_validate_json(out).items[0].name == "taxi"


def test_ls_files_is_lazy(hub, capsys, monkeypatch):
    code, out, err = run(capsys, monkeypatch, "ls", "taxi@v1", "--limit", "20", "--json")
    assert code == 0
    listing = FileList.model_validate_json(out)
    assert len(listing.items) == 20 and listing.next_cursor == "f019"
    file_requests = [r for r in hub.requests if r.url.path.endswith("/files")]
    assert len(file_requests) == 1 and file_requests[0].url.params["limit"] == "20"

    hub.requests.clear()
    code, out, err = run(capsys, monkeypatch, "ls", "taxi", "-r", "-n", "1200")
    assert code == 0 and "f249" in out and "more entries" not in err
    assert [r.url.params["limit"] for r in hub.requests if r.url.path.endswith("/files")] == ["1000"]


def test_info_json_and_human(hub, capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, "info", "taxi", "--json")
    doc = json.loads(out)
    assert Dataset.model_validate(doc["dataset"]).full_name == "alice/taxi"
    assert doc["versions"][0]["version"] == 1
    code, out, _ = run(capsys, monkeypatch, "info", "alice/taxi")
    assert "dshub download alice/taxi@v1" in out and 'open_dataset("alice/taxi@v1")' in out
    assert "Open upload sessions" not in out


def test_info_shows_an_open_session(hub, capsys, monkeypatch):
    now = datetime.now(timezone.utc)  # not NOW: the module may have been imported minutes ago
    hub.sessions = [{"id": "3f2a9c1e-0000-4000-8000-000000000001", "dataset_id": "x", "owner": "alice",
                     "name": "taxi", "version": None, "state": "open",
                     "created_at": (now - timedelta(minutes=90)).isoformat(),
                     "expires_at": (now + timedelta(hours=20)).isoformat(),
                     "location": {"bucket": "b", "prefix": "datasets/x/v2/"}, "stored_files": 7, "stored_bytes": 7000}]
    code, out, _ = run(capsys, monkeypatch, "info", "taxi")
    assert code == 0 and "Open upload sessions" in out
    row = next(ln for ln in out.splitlines() if "alice/taxi" in ln and "3f2a9c1e" in ln)
    assert "3f2a9c1e-0000-4000-8000-000000000001" in row and "1h 30m" in row and "7 files, 7.0 kB" in row
    code, out, _ = run(capsys, monkeypatch, "info", "taxi", "--json")
    assert json.loads(out)["sessions"][0]["stored_files"] == 7


def test_edit_computes_tags(hub, capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, "edit", "taxi", "--tag", "c", "--untag", "a", "--tag", "b", "--json")
    assert code == 0
    patch = [r for r in hub.requests if r.method == "PATCH"][0]
    assert json.loads(patch.content) == {"tags": ["b", "c"]}
    assert Dataset.model_validate_json(out).tags == ["b", "c"]


def test_rm_needs_yes_when_not_interactive(hub, capsys, monkeypatch):
    code, _, err = run(capsys, monkeypatch, "rm", "taxi", interactive=False)
    assert code == 2 and "--yes" in err and "taxi" in hub.datasets
    code, _, err = run(capsys, monkeypatch, "rm", "taxi", interactive=True, stdin="n\n")
    assert code == 1 and "taxi" in hub.datasets
    code, _, err = run(capsys, monkeypatch, "rm", "taxi", interactive=True, stdin="y\n")
    assert code == 0 and "taxi" not in hub.datasets and "Deleted alice/taxi" in err


def test_errors_map_to_exit_codes(hub, capsys, monkeypatch):
    code, out, err = run(capsys, monkeypatch, "info", "nope")
    assert (code, out) == (4, "") and err.startswith("Error: dataset alice/nope not found")
    code, _, err = run(capsys, monkeypatch, "info", "UPPER")
    assert code == 2 and "invalid dataset name" in err
    code, _, err = run(capsys, monkeypatch, "ls", "taxi:../x")
    assert code == 2


def test_creds_formats(hub, capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, "creds", "taxi", "--json")
    assert ReadGrant.model_validate_json(out).credentials.secret_access_key == SECRET
    code, out, err = run(capsys, monkeypatch, "creds", "taxi", "--format", "credential-process")
    assert json.loads(out)["SecretAccessKey"] == SECRET and err == ""
    code, out, _ = run(capsys, monkeypatch, "creds", "taxi")
    assert "rclone ls dshub:b/datasets/x/v1/" in out and SECRET in out
    # The suggested command lines carry no secret.
    assert all(SECRET not in line for line in out.splitlines() if "rclone" in line)
    code, _, err = run(capsys, monkeypatch, "creds", "taxi", "--format", "env", "--remote", "bad-name")
    assert code == 2


def test_rclone_config_interactive_prompts(hub, capsys, monkeypatch, tmp_path):
    conf = tmp_path / "rclone.conf"
    monkeypatch.setenv("RCLONE_CONFIG", str(conf))
    code, out, err = run(capsys, monkeypatch, "rclone-config", "taxi", interactive=True, stdin="mine\neu-west-1\n\n")
    assert code == 0, err
    text = conf.read_text()
    assert "[mine]" in text and "region = eu-west-1" in text and "endpoint = http://127.0.0.1:9" in text
    assert "rclone ls mine:b/datasets/x/v1/" in out
    assert SECRET not in out + err


def test_rclone_config_json_has_no_secret(hub, capsys, monkeypatch, tmp_path):
    conf = tmp_path / "r.conf"
    code, out, _ = run(capsys, monkeypatch, "rclone-config", "taxi", "--config", str(conf), "--json")
    doc = json.loads(out)
    assert doc["remote"] == "dshub-taxi" and doc["config_path"] == str(conf) and SECRET not in out


def test_whoami(hub, capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, "whoami", "--json")
    assert code == 0 and User.model_validate_json(out).name == "alice"
    code, out, err = run(capsys, monkeypatch, "whoami")
    assert out == "alice\n" and "token from DSHUB_TOKEN" in err


def test_login_requires_token_source(hub, capsys, monkeypatch):
    code, _, err = run(capsys, monkeypatch, "login", "--hub", "http://hub.test", interactive=False)
    assert code == 2 and "--token -" in err
    code, _, err = run(capsys, monkeypatch, "login", "--hub", "http://hub.test", "--token", "-", stdin="\n")
    assert code == 2 and "stdin was empty" in err
    code, _, err = run(capsys, monkeypatch, "login", "--hub", "hub.test", "--token", "-", stdin="x\n")
    assert code == 2 and "http" in err


def test_creds_table_keeps_long_session_token_whole(hub, capsys, monkeypatch):
    long_token = "T" * 1200 + "END"
    original = hub.__call__

    def with_token(r):
        resp = original(r)
        if r.url.path.endswith("/credentials"):
            body = json.loads(resp.content)
            body["credentials"]["session_token"] = long_token
            return httpx.Response(200, json=body)
        return resp

    monkeypatch.setattr(hub, "__call__", with_token)
    monkeypatch.setattr(FakeHub, "__call__", lambda self, r: with_token(r))
    code, out, _ = run(capsys, monkeypatch, "creds", "taxi")
    assert code == 0 and long_token in out


@pytest.mark.parametrize(
    ("command", "usage"),
    [("upload", "PATH [REF]"), ("download", "REF [DEST]"), ("ls", "[REF]"), ("cat", "REF:PATH")],
)
def test_usage_line_names_each_argument_once(hub, capsys, monkeypatch, command, usage):
    # Typer brackets optional arguments itself: a metavar of "[REF]" printed "[[REF]]".
    code, out, _ = run(capsys, monkeypatch, command, "--help")
    assert code == 0
    line = next(ln for ln in out.splitlines() if "Usage:" in ln)
    assert line.split("[OPTIONS]")[1].strip() == usage


# --- conventions ----------------------------------------------------------------------------


def test_h_is_help_and_V_is_version(hub, capsys, monkeypatch):
    for args in (["-h"], ["ls", "-h"], ["sessions", "-h"], ["hub", "serve", "-h"]):
        code, out, _ = run(capsys, monkeypatch, *args)
        assert code == 0 and out.startswith("Usage: dshub"), args
    code, out, _ = run(capsys, monkeypatch, "-V")
    assert code == 0 and out.startswith("dshub ")


@pytest.mark.parametrize(
    "command",
    ["ls", "info", "edit", "rm", "creds", "rclone-config", "upload", "download", "cat", "login", "logout",
     "whoami", "doctor", "sessions", "abort", "hub serve"],
)
def test_help_placeholders_are_plain_and_output_flags_everywhere(hub, capsys, monkeypatch, command):
    code, out, _ = run(capsys, monkeypatch, *command.split(), "--help")
    assert code == 0
    import re

    usage_and_options = out.split("Examples:")[0]
    assert not re.search(r"<(str|int|float|path|bool|list\[\w+\]|\w+ range)>", usage_and_options), usage_and_options
    assert "{" not in usage_and_options
    if not command.startswith("hub"):
        assert "-q, --quiet" in out and "-v, --verbose" in out


def test_choices_are_shown_for_hub_serve(hub, capsys, monkeypatch):
    _, out, _ = run(capsys, monkeypatch, "hub", "serve", "--help")
    assert "--broker [local|sts]" in out and "--log-level [debug|info|warning|error|critical]" in out


def test_quiet_and_verbose(hub, capsys, monkeypatch):
    code, out, err = run(capsys, monkeypatch, "edit", "taxi", "--tag", "q", "-q")
    assert code == 0 and err == ""
    code, _, err = run(capsys, monkeypatch, "edit", "taxi", "--tag", "q", "--verbose", "--quiet")
    assert code == 2 and "contradict" in err
    # -q is --quiet on `ls` too, not --search.
    code, out, err = run(capsys, monkeypatch, "ls", "-q")
    assert code == 0 and "taxi" in out and not [r for r in hub.requests if "q" in r.url.params]


def test_ls_paging_all_cursor_and_zero(hub, capsys, monkeypatch):
    code, _, err = run(capsys, monkeypatch, "ls", "taxi", "-n", "0")
    assert code == 2 and err.strip() == "Error: --limit 0: give at least 1, or --all to list everything"
    code, out, err = run(capsys, monkeypatch, "ls", "taxi", "-r", "-n", "100")
    assert code == 0 and len(out.splitlines()) == 100
    cursor = err.split("--cursor ")[1].split("`")[0]
    code, out2, err = run(capsys, monkeypatch, "ls", "taxi", "-r", "-n", "100", "--cursor", cursor)
    assert out2.splitlines()[0].endswith("f100") and out2.splitlines()[-1].endswith("f199")
    hub.requests.clear()
    code, out, err = run(capsys, monkeypatch, "ls", "taxi", "-r", "--all")
    assert code == 0 and len(out.splitlines()) == 250 and "more" not in err
    hub.datasets.update({f"d{i:03d}": ds(f"d{i:03d}") for i in range(4)})
    code, out, err = run(capsys, monkeypatch, "ls", "-n", "2")
    assert len(out.splitlines()) == 3 and "--cursor d2" in err  # a header and two rows
    code, out, err = run(capsys, monkeypatch, "ls", "-n", "2", "--cursor", "d2")
    assert [ln.split()[0] for ln in out.splitlines()[1:]] == ["d001", "d002"]
    code, _, err = run(capsys, monkeypatch, "ls", "--cursor", "zz")
    assert code == 2 and "--cursor" in err


def test_latest_is_accepted_and_a_version_where_none_fits_is_refused(hub, capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, "info", "taxi@latest", "--json")
    assert code == 0 and json.loads(out)["dataset"]["name"] == "taxi"
    code, _, err = run(capsys, monkeypatch, "edit", "taxi@latest", "--tag", "x")
    assert code == 2 and "version" in err


def test_error_with_json_prints_one_json_document(hub, capsys, monkeypatch):
    code, out, err = run(capsys, monkeypatch, "info", "nope", "--json")
    assert code == 4 and err.startswith("Error: dataset alice/nope not found")
    doc = json.loads(out)
    assert doc["error"]["code"] == "not_found" and doc["error"]["exit_code"] == 4
    assert doc["error"]["message"] == "dataset alice/nope not found" and "dshub ls" in doc["error"]["hint"]
    code, out, err = run(capsys, monkeypatch, "ls", "--limit", "x", "--json")  # a Click usage error
    assert code == 2 and json.loads(out)["error"]["code"] == "usage"
    code, out, _ = run(capsys, monkeypatch, "info", "nope")
    assert out == ""


def test_rejected_token_hint_depends_on_where_the_token_came_from(hub, capsys, monkeypatch):
    monkeypatch.setenv("DSHUB_TOKEN", "wrong")
    from dshub.library.client import Client

    monkeypatch.setattr("dshub.cli.common.connect",
                        lambda profile=None: Client("http://hub.test", "wrong", transport=httpx.MockTransport(hub)))
    code, _, err = run(capsys, monkeypatch, "ls", "--profile", "al2")
    assert code == 3 and "DSHUB_TOKEN" in err and "dshub login" not in err
    monkeypatch.delenv("DSHUB_TOKEN")
    code, _, err = run(capsys, monkeypatch, "ls", "--profile", "al2")
    assert code == 3 and "run `dshub login --profile al2` with a valid token" in err


def test_license_is_an_spdx_id(hub, capsys, monkeypatch):
    code, _, err = run(capsys, monkeypatch, "edit", "taxi", "--license", "cc-by-4.0", "--json")
    assert code == 0 and json.loads([r for r in hub.requests if r.method == "PATCH"][-1].content) == {
        "license": "CC-BY-4.0"}
    code, _, err = run(capsys, monkeypatch, "edit", "taxi", "--license", "CC-BY-4")
    assert code == 2 and "did you mean CC-BY-4.0" in err
    code, _, err = run(capsys, monkeypatch, "edit", "taxi", "--license", "LicenseRef-Internal-1")
    assert code == 0


def test_control_characters_from_the_hub_are_neutralised(hub, capsys, monkeypatch):
    hub.datasets["taxi"]["description"] = "nice\x1b]0;pwned\x07 data\x1b[2J\nline two\x9b"
    code, out, _ = run(capsys, monkeypatch, "info", "taxi")
    assert code == 0 and "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "nice?]0;pwned? data?[2J\nline two?" in out
    code, out, _ = run(capsys, monkeypatch, "info", "taxi", "--json")
    assert json.loads(out)["dataset"]["description"].startswith("nice\x1b]0;")  # data itself kept in JSON


def test_creds_format_json_error_is_json_too(hub, capsys, monkeypatch):
    code, out, err = run(capsys, monkeypatch, "creds", "alice/nope", "--format", "json")
    assert code == 4 and json.loads(out)["error"]["code"] == "not_found" and err.startswith("Error: ")


def test_install_completion_installs_the_shell_asked_for(hub, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SHELL", "/bin/bash")
    code, out, _ = run(capsys, monkeypatch, "--install-completion", "zsh")
    assert code == 0 and out.startswith("zsh completion installed")
    assert "_DSHUB_COMPLETE" in (tmp_path / ".zfunc" / "_dshub").read_text()
    assert not (tmp_path / ".bashrc").exists()  # the detected shell is not what was asked for
    code, out, _ = run(capsys, monkeypatch, "--install-completion")  # no shell: $SHELL's
    assert code == 0 and out.startswith("bash completion installed") and (tmp_path / ".bashrc").exists()
    code, out, _ = run(capsys, monkeypatch, "--show-completion", "fish")
    assert code == 0 and "complete --command dshub" in out
    code, _, _ = run(capsys, monkeypatch, "--install-completion", "tcsh")
    assert code == 2
