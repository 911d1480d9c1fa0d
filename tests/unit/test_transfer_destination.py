"""The destination checks a download makes before fetching anything."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from dshub.errors import DestinationNotWritableError, DshubError, ExitCode, NoSpaceError
from dshub.transfer.destination import check_room, make_writable_dir, os_error, space_needed


def test_space_needed_rounds_each_file_to_blocks() -> None:
    assert space_needed([0, 1, 4096, 4097], 4096) == 0 + 4096 + 4096 + 8192
    assert space_needed([10], 0) == 10


def test_check_room_refuses_what_does_not_fit(tmp_path: Path) -> None:
    check_room(str(tmp_path / "new" / "folder"), [1000])  # measured on the nearest folder that exists
    with pytest.raises(NoSpaceError, match="not enough space") as e:
        check_room(str(tmp_path / "new"), [1 << 60])
    assert e.value.exit_code == ExitCode.FAILURE and "nothing was fetched" in e.value.message


def test_make_writable_dir(tmp_path: Path) -> None:
    make_writable_dir(str(tmp_path / "a" / "b"))
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(DshubError, match="a file of that name"):
        make_writable_dir(str(tmp_path / "file"))


@pytest.mark.parametrize(
    ("code", "exc"),
    [
        (errno.EROFS, DestinationNotWritableError),
        (errno.EACCES, DestinationNotWritableError),
        (errno.EPERM, DestinationNotWritableError),
        (errno.ENOSPC, NoSpaceError),
        (errno.EIO, DshubError),
    ],
)
def test_os_errors_become_one_line_typed_errors(code: int, exc: type[DshubError]) -> None:
    err = os_error(OSError(code, "some reason", "/data/x"), "create")
    assert type(err) is exc and err.message.startswith("cannot create /data/x: some reason")
    assert "\n" not in err.message
