"""Local scan rules: what is uploaded, what is refused, what is warned about."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dshub.errors import UsageError
from dshub.transfer import scan as scan_mod
from dshub.transfer.scan import glob_to_regex, make_filter, restat, scan


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def test_scan_files_sizes_sorted(tmp_path: Path) -> None:
    _tree(tmp_path, {"b.txt": b"bb", "a/x.csv": b"x" * 10, "a/y z #%?.csv": b"y", "-lead": b"d"})
    r = scan(tmp_path)
    assert [f.rel for f in r.files] == ["-lead", "a/x.csv", "a/y z #%?.csv", "b.txt"]
    assert r.total_bytes == 14 and r.root == str(tmp_path) and not r.single_file


def test_single_file(tmp_path: Path) -> None:
    _tree(tmp_path, {"d/one.csv": b"12345"})
    r = scan(tmp_path / "d" / "one.csv")
    assert r.single_file and r.root == str(tmp_path / "d") and [f.rel for f in r.files] == ["one.csv"]


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        scan(tmp_path / "nope")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(UsageError, match="holds no files"):
        scan(tmp_path / "empty")


def test_everything_excluded(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.tmp": b"1"})
    with pytest.raises(UsageError, match="excluded"):
        scan(tmp_path, exclude=["*.tmp"])


def test_symlinks_skipped_and_reported(tmp_path: Path) -> None:
    _tree(tmp_path, {"real.txt": b"r", "d/x": b"x"})
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    (tmp_path / "dlink").symlink_to(tmp_path / "d")
    (tmp_path / "broken").symlink_to(tmp_path / "missing")
    r = scan(tmp_path)
    assert [f.rel for f in r.files] == ["d/x", "real.txt"]
    assert sorted(r.symlinks) == ["broken", "dlink", "link.txt"]


def test_empty_dirs_reported(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.txt": b"a"})
    (tmp_path / "e1").mkdir()
    (tmp_path / "e2" / "e3").mkdir(parents=True)
    r = scan(tmp_path)
    assert "e1" in r.empty_dirs and "e2/e3" in r.empty_dirs


def test_too_long_key(tmp_path: Path) -> None:
    deep = "/".join(["d" * 200] * 5)  # 1004 bytes: fine on disk, too long as an S3 key
    _tree(tmp_path, {"ok.txt": b"1", f"{deep}/f.txt": b"2"})
    with pytest.raises(UsageError) as ei:
        scan(tmp_path)
    assert len(ei.value.details) == 1 and ei.value.details[0].path.endswith("f.txt")
    assert "nothing was sent" in ei.value.message


def test_key_limit_counts_prefix(tmp_path: Path) -> None:
    name = "/".join(["n" * 200] * 4) + "/" + "n" * 80  # 884 bytes
    _tree(tmp_path, {name: b"1"})
    assert scan(tmp_path, prefix_bytes=60).files
    with pytest.raises(UsageError):
        scan(tmp_path, prefix_bytes=200)


def test_control_characters_refused(tmp_path: Path) -> None:
    _tree(tmp_path, {"bad\nname.txt": b"1", "ok": b"1"})
    with pytest.raises(UsageError) as ei:
        scan(tmp_path)
    assert "control" in ei.value.details[0].problem


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names the open directory through /proc")
def test_names_that_are_not_plain_take_the_full_check(tmp_path: Path) -> None:
    # The scan trusts a path made of plain names; everything else is checked in full.
    _tree(tmp_path, {"ok/a:b.txt": b"1", "sub/C:x": b"1", "C:top": b"1", "back\\slash": b"1"})
    os.makedirs(tmp_path / "raw")
    (tmp_path / "raw").joinpath(os.fsdecode(b"bad\xff.txt")).write_bytes(b"1")
    with pytest.raises(UsageError) as ei:
        scan(tmp_path)
    problems = {d.path: d.problem for d in ei.value.details}
    assert sorted(problems) == ["C:top", "back\\slash", "raw/" + os.fsdecode(b"bad\xff.txt")]
    assert "absolute" in problems["C:top"] and "backslash" in problems["back\\slash"]
    assert "UTF-8" in problems["raw/" + os.fsdecode(b"bad\xff.txt")]


def test_rclones_escape_character_in_a_name_is_refused(tmp_path: Path) -> None:
    # rclone drops or doubles it (rclone #6098): the object would not have the file's name.
    _tree(tmp_path, {"a\u201bb.bin": b"1", "end\u201b/x.bin": b"1", "fine\uff0fwidth\uff0e.bin": b"1"})
    with pytest.raises(UsageError) as ei:
        scan(tmp_path)
    problems = {d.path: d.problem for d in ei.value.details}
    assert sorted(problems) == ["a\u201bb.bin", "end\u201b/x.bin"]
    assert all("rename it" in p for p in problems.values())


def test_unreadable_files_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests may run as root, where chmod 000 does not stop reading; fake the open failure.
    _tree(tmp_path, {"a.txt": b"1", "secret/b.txt": b"2", "secret/c.txt": b"3"})
    real = scan_mod._readable

    def readable(name: str, dir_fd: int | None = None) -> bool:
        where = os.readlink(f"/proc/self/fd/{dir_fd}") if dir_fd is not None else name
        return "secret" not in where and real(name, dir_fd)

    monkeypatch.setattr(scan_mod, "_readable", readable)
    with pytest.raises(UsageError) as ei:
        scan(tmp_path)
    assert sorted(d.path for d in ei.value.details) == ["secret/b.txt", "secret/c.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read mode-000 files")
def test_unreadable_for_real(tmp_path: Path) -> None:  # pragma: no cover - non-root runs
    _tree(tmp_path, {"a.txt": b"1", "b.txt": b"2"})
    (tmp_path / "b.txt").chmod(0)
    with pytest.raises(UsageError):
        scan(tmp_path)


def test_fifo_is_an_error(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.txt": b"1"})
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UsageError) as ei:
        scan(tmp_path)
    assert ei.value.details[0].path == "pipe"


@pytest.mark.parametrize(
    ("pattern", "path", "match"),
    [
        ("*.csv", "a.csv", True),
        ("*.csv", "2022/01.csv", True),  # unanchored: matches the end of the path
        ("/*.csv", "2022/01.csv", False),
        ("/*.csv", "a.csv", True),
        ("2022/*.csv", "2022/01.csv", True),
        ("2022/*.csv", "x/2022/01.csv", True),
        ("2022/*", "2022/a/b.csv", False),
        ("2022/**", "2022/a/b.csv", True),
        ("tmp/", "tmp/a/b", True),
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("*.{csv,json}", "x.json", True),
        ("[ab].txt", "b.txt", True),
        ("[!ab].txt", "b.txt", False),
        ("file#%.txt", "d/file#%.txt", True),
    ],
)
def test_glob(pattern: str, path: str, match: bool) -> None:
    assert bool(glob_to_regex(pattern).search(path)) is match


def test_filter_exclude_first(tmp_path: Path) -> None:
    keep = make_filter(include=["*.csv"], exclude=["tmp/**"])
    assert keep("a.csv") and not keep("tmp/a.csv") and not keep("a.txt")
    _tree(tmp_path, {"a.csv": b"1", "tmp/b.csv": b"2", "c.txt": b"3"})
    r = scan(tmp_path, include=["*.csv"], exclude=["tmp/**"])
    assert [f.rel for f in r.files] == ["a.csv"] and r.excluded == 2


def test_restat_detects_changes(tmp_path: Path) -> None:
    _tree(tmp_path, {"a": b"1", "b": b"2", "c": b"3"})
    r = scan(tmp_path)
    (tmp_path / "a").write_bytes(b"longer")
    (tmp_path / "c").unlink()
    problems = restat(r.root, r.files)
    assert {(d.path, d.problem) for d in problems} == {
        ("a", "changed while uploading"),
        ("c", "deleted while uploading"),
    }
