"""The Output object: json mode, stderr messages, no colour, confirm in non-interactive runs."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from dshub.cli.common import human_size, parse_ref_arg
from dshub.cli.output import Output
from dshub.errors import UsageError
from dshub.models import User


def test_json_mode_prints_one_document(capsys):
    out = Output(json_mode=True)
    out.info("hello")  # messages go to stderr, never into the JSON
    out.result(User(name="alice", created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)), lambda: print("human"))
    o, e = capsys.readouterr()
    assert json.loads(o) == {"name": "alice", "is_admin": False, "created_at": "2026-01-01T00:00:00Z"}
    assert "hello" in e and "human" not in o


def test_json_mode_nested_models(capsys):
    Output(json_mode=True).result({"user": User(name="a"), "when": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    assert json.loads(capsys.readouterr().out)["user"]["name"] == "a"


def test_human_mode_and_quiet(capsys):
    out = Output()
    out.result({"x": 1}, lambda: out.out.print("table"))
    out.success("done")
    o, e = capsys.readouterr()
    assert o == "table\n" and "done" in e
    q = Output(quiet=True)
    q.result({"x": 1}, lambda: q.out.print("table"))
    q.info("x")
    q.warn("careful")
    o, e = capsys.readouterr()
    assert o == "" and e.strip() == "Warning: careful"


def test_no_colour_when_not_a_tty(capsys, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    out = Output()
    out.out.print("[red]red[/]")
    out.warn("w")
    o, e = capsys.readouterr()
    assert "\x1b[" not in o + e


def test_confirm_refuses_without_terminal():
    with pytest.raises(UsageError, match="--yes"):
        Output(interactive=False).confirm("Delete?")
    Output(interactive=False).confirm("Delete?", yes=True)
    with pytest.raises(UsageError):
        Output(interactive=False).prompt("Remote")


def test_helpers():
    assert human_size(999) == "999 B" and human_size(1500) == "1.5 kB" and human_size(3 * 10**9) == "3.0 GB"
    with pytest.raises(UsageError):
        parse_ref_arg("a/b:c")
    assert parse_ref_arg("a/b:c", allow_path=True).path == "c"
    with pytest.raises(UsageError):
        parse_ref_arg("a/b@v2", allow_version=False)
