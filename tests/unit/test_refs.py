"""Name, version, reference and path rules (dshub.refs)."""

from __future__ import annotations

import pytest

from dshub.refs import (
    DatasetRef,
    RefError,
    normalise_name,
    parse_ref,
    parse_version,
    validate_name,
    validate_relpath,
    validate_user,
)


@pytest.mark.parametrize("name", ["a", "taxi-data", "taxi_data.v2", "0abc", "x" * 100])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "Taxi", "-x", ".x", "_x", "..", ".", "a/b", "a b", "x" * 101, "a\x00", "é"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(RefError, match="invalid dataset name"):
        validate_name(name)


@pytest.mark.parametrize("user", ["alice", "a1", "a-b_c", "x" * 39])
def test_valid_users(user: str) -> None:
    assert validate_user(user) == user


@pytest.mark.parametrize("user", ["", "Alice", "a.b", "-a", "x" * 40, "a/b"])
def test_invalid_users(user: str) -> None:
    with pytest.raises(RefError):
        validate_user(user)


@pytest.mark.parametrize(("text", "n"), [("v1", 1), ("3", 3), (" v42 ", 42), ("v999999999", 999999999)])
def test_parse_version(text: str, n: int) -> None:
    assert parse_version(text) == n


@pytest.mark.parametrize("text", ["v0", "0", "-1", "v", "vv1", "1.0", "v1234567890", "latest", "v01"])
def test_parse_version_rejects(text: str) -> None:
    with pytest.raises(RefError):
        parse_version(text)


def test_parse_ref_forms() -> None:
    assert parse_ref("taxi") == DatasetRef(name="taxi")
    assert parse_ref("alice/taxi@v3:dir/file.csv") == DatasetRef(
        name="taxi", owner="alice", version=3, path="dir/file.csv"
    )
    assert parse_ref("alice/taxi:/dir/") == DatasetRef(name="taxi", owner="alice", path="dir")
    assert parse_ref("alice/taxi:") == DatasetRef(name="taxi", owner="alice")
    assert str(parse_ref("alice/taxi@3:a")) == "alice/taxi@v3:a"
    assert parse_ref("taxi").with_owner("bob").owner == "bob"


@pytest.mark.parametrize("text", ["a/b/c", "Alice/taxi", "alice/Taxi", "alice/taxi@x", "alice/taxi:../x", "/taxi", "@v1"])
def test_parse_ref_rejects(text: str) -> None:
    with pytest.raises(RefError):
        parse_ref(text)


@pytest.mark.parametrize("path", ["a", "a/b.csv", "dir/sub/file with spaces.txt", "ünïcode/ok", "..a", "a..", ".hidden"])
def test_valid_relpaths(path: str) -> None:
    assert validate_relpath(path) == path


@pytest.mark.parametrize(
    "path",
    ["", "/abs", "../x", "a/../b", "a/..", "./a", "a/./b", "a//b", "a/", "C:/x", "c:x", "a\\b", "a\x00b", "a\nb",
     "a\x7fb", "x" * 901, "é" * 451],
)
def test_invalid_relpaths(path: str) -> None:
    with pytest.raises(RefError):
        validate_relpath(path)


@pytest.mark.parametrize(
    ("text", "out"),
    [("My Taxi Data", "my-taxi-data"), ("Ünïcödé", "unicode"), ("---", "dataset"), ("a.b_c", "a.b_c"),
     ("x" * 200, "x" * 100)],
)
def test_normalise_name(text: str, out: str) -> None:
    assert normalise_name(text) == out
    validate_name(normalise_name(text))


def test_latest_is_a_version_word() -> None:
    from dshub.refs import DatasetRef, parse_ref

    r = parse_ref("alice/taxi@latest:2022/a.csv")
    assert (r.owner, r.name, r.version, r.path, r.latest) == ("alice", "taxi", None, "2022/a.csv", True)
    assert str(r) == "alice/taxi@latest:2022/a.csv"
    assert r.with_owner("bob").latest and not r.without_version().latest
    assert parse_ref("taxi").latest is False
    assert parse_ref("taxi@v3").with_version(4) == DatasetRef(name="taxi", version=4)
    with pytest.raises(RefError, match="or latest"):
        parse_ref("taxi@newest")
