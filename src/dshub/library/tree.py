"""A lazy tree over one dataset version: folders and file references, paged on demand.

Nothing is fetched when a tree is made. Asking for something fetches only what answers
it, one page of the hub's listing at a time (``GET …/files?limit=&cursor=``):

* ``ds.files()`` — every file, recursively, one page per ``page_size`` files consumed;
* ``for entry in ds`` / ``ds.ls()`` — one folder level, paged the same way;
* ``ds["2022"]`` → :class:`Folder`, ``ds["2022/01.csv"]`` → :class:`FileRef` — one request
  of one entry;
* ``repr(ds)`` / ``folder.tree()`` — the first :data:`REPR_ENTRIES` entries of one level,
  like ``ls`` (one page; ``repr(ds)`` also asks for the version's totals once). The repr of
  a sub-folder fetches nothing, so printing a list of folders stays free.

A :class:`FileRef` knows its size and MD5 from the listing; its bytes are read only by
``open()`` (a seekable stream of ranged reads), ``read_bytes()`` or ``download()``. Reads
go through :class:`dshub.library.fs.DshubFileSystem`, which holds the short-lived read
credentials and renews them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from blake3 import blake3 as _blake3

from dshub.errors import NotFoundError, PathNotFoundError
from dshub.refs import RefError, validate_relpath
from dshub.util.units import human_size

if TYPE_CHECKING:
    from dshub.api.client import HubClient
    from dshub.library.fs import DshubFileSystem
    from dshub.models import FileEntry, Version

REPR_ENTRIES = 20
PAGE_SIZE = 1000
_CHUNK = 8 * 2**20


def _files(n: int | None) -> str:
    return "? files" if n is None else f"{n} file" if n == 1 else f"{n} files"


class _Version:
    """Owner, name and the version of a tree, resolved (latest → number) at most once."""

    def __init__(self, hub: HubClient, owner: str, name: str, version: int | None) -> None:
        self.hub = hub
        self.owner = owner
        self.name = name
        self._number = version
        self._info: Version | None = None

    @property
    def number(self) -> int:
        if self._number is None:
            self._number = self.info.version
        return self._number

    @property
    def info(self) -> Version:
        if self._info is None:
            try:
                self._info = self.hub.get_version(self.owner, self.name, self._number)
            except NotFoundError as e:
                raise PathNotFoundError(f"{self.label}: {e.message}", code=e.code) from None
            self._number = self._info.version
        return self._info

    @property
    def label(self) -> str:
        v = f"@v{self._number}" if self._number is not None else ""
        return f"{self.owner}/{self.name}{v}"


class _Node:
    def __init__(self, tree: DatasetTree, path: str) -> None:
        self._tree = tree
        self.path = path

    @property
    def name(self) -> str:
        """Last component of the path ('' for the dataset root)."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def ref(self) -> str:
        """``OWNER/NAME@vN[:PATH]`` as the CLI takes it."""
        base = f"{self._tree.owner}/{self._tree.dataset_name}@v{self._tree.version}"
        return f"{base}:{self.path}" if self.path else base

    @property
    def url(self) -> str:
        """``dshub://OWNER/NAME@vN/PATH`` for pandas, Dask, fsspec."""
        base = f"dshub://{self._tree.owner}/{self._tree.dataset_name}@v{self._tree.version}"
        return f"{base}/{self.path}" if self.path else base


class FileRef(_Node):
    """A reference to one file of a version; nothing is read until asked."""

    def __init__(self, tree: DatasetTree, entry: FileEntry) -> None:
        super().__init__(tree, entry.path)
        self._entry = entry

    @property
    def size(self) -> int:
        """Size in bytes."""
        return self._entry.size

    @property
    def md5(self) -> str | None:
        """Hex MD5 of the content, where the hub knows it."""
        return self._entry.md5

    @property
    def blake3(self) -> str | None:
        """Hex BLAKE3 of the content, where the hub knows it (versions uploaded by dshub
        0.x before it recorded BLAKE3 have only MD5)."""
        return self._entry.blake3

    def __repr__(self) -> str:
        return f"<FileRef {self.ref} {human_size(self.size)}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileRef) and other.ref == self.ref

    def __hash__(self) -> int:
        return hash(self.ref)

    def open(self, mode: str = "rb", *, block_size: int | None = None) -> IO[bytes]:
        """A seekable binary stream over the file: each buffer refill is one ranged GET.

        ``block_size`` is the read-ahead per request (default 4 MiB). Only ``"rb"``.
        """
        if mode != "rb":
            raise ValueError(f"mode {mode!r}: dataset files are read-only, open them with 'rb'")
        fs = self._tree._fs()
        from dshub.library.fs import DshubFile

        info = {"name": self.url[len("dshub://"):], "size": self.size, "type": "file", "md5": self.md5}
        return DshubFile(fs, info["name"], mode="rb", block_size=block_size, size=self.size, details=info)  # type: ignore[return-value]

    def read_bytes(self) -> bytes:
        """The whole content, in one request."""
        return self._tree._fs().read_range(self.url[len("dshub://"):], 0, None)

    def download(self, path: str | os.PathLike[str]) -> str:
        """Save the file at ``path`` (a folder: inside it, under the file's name); return the path.

        Streams in 8 MiB ranged reads into a temporary file next to the target and renames
        it into place, so an interrupted download never leaves a half file under the real
        name. The content is checked against the hub's BLAKE3 (else its MD5) when known.
        """
        dest = os.fspath(path)
        if os.path.isdir(dest):
            dest = os.path.join(dest, self.name)
        folder = os.path.dirname(os.path.abspath(dest))
        os.makedirs(folder, exist_ok=True)
        want, kind = (self.blake3, "BLAKE3") if self.blake3 else (self.md5, "MD5")
        h = _blake3() if self.blake3 else hashlib.md5(usedforsecurity=False)
        fd, tmp = tempfile.mkstemp(prefix=".dshub-", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out, self.open(block_size=_CHUNK) as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
            if want and h.hexdigest() != want.lower():
                from dshub.errors import TransferError

                raise TransferError(f"{self.ref}: downloaded bytes do not match the hub's {kind}; retry")
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return dest


class Folder(_Node):
    """One folder of a version: iterate for one level, index for a path below it."""

    def __init__(self, tree: DatasetTree, path: str, entry: FileEntry | None = None) -> None:
        super().__init__(tree, path)
        self._entry = entry

    @property
    def size(self) -> int | None:
        """Bytes below this folder when known from the parent's listing, else None."""
        return self._entry.size if self._entry is not None else None

    @property
    def file_count(self) -> int | None:
        """Files below this folder when known from the parent's listing, else None."""
        return self._entry.file_count if self._entry is not None else None

    def _full(self, rel: str) -> str:
        rel = rel.strip("/")
        return f"{self.path}/{rel}" if self.path and rel else (rel or self.path)

    def _node(self, entry: FileEntry) -> FileRef | Folder:
        return Folder(self._tree, entry.path, entry) if entry.is_dir else FileRef(self._tree, entry)

    def __getitem__(self, rel: str) -> FileRef | Folder:
        """``folder["a/b.csv"]`` → :class:`FileRef`, ``folder["a"]`` → :class:`Folder` (one request)."""
        full = self._full(rel)
        if not full:
            return self
        try:
            validate_relpath(full)
        except RefError as e:
            raise KeyError(str(e)) from None
        t = self._tree
        try:
            page = t.hub.list_files(t.owner, t.dataset_name, t.version, prefix=full, limit=1)
        except NotFoundError:
            raise PathNotFoundError(f"no file or folder {full!r} in {t.owner}/{t.dataset_name}@v{t.version}") from None
        if len(page.items) == 1 and page.items[0].path == full and not page.items[0].is_dir:
            return FileRef(t, page.items[0])
        return Folder(t, full)

    def __truediv__(self, rel: str) -> FileRef | Folder:
        return self[rel]

    def __contains__(self, rel: object) -> bool:
        if not isinstance(rel, str):
            return False
        try:
            self[rel]
        except (PathNotFoundError, KeyError):
            return False
        return True

    def _entries(self, *, recursive: bool, page_size: int | None = None) -> Iterator[FileEntry]:
        t = self._tree
        try:
            yield from t.hub.iter_files(
                t.owner, t.dataset_name, t.version, prefix=self.path, recursive=recursive,
                page_size=page_size or t.page_size,
            )
        except NotFoundError as e:
            raise PathNotFoundError(f"{self.ref}: {e.message}", code=e.code) from None

    def __iter__(self) -> Iterator[FileRef | Folder]:
        """The entries of this level (folders first), one page fetched at a time."""
        for e in self._entries(recursive=False):
            yield self._node(e)

    def ls(self) -> list[FileRef | Folder]:
        """All entries of this level (fetches every page of it)."""
        return list(self)

    def files(self, *, page_size: int | None = None) -> Iterator[FileRef]:
        """Every file below this folder, recursively, in path order; pages fetched lazily."""
        for e in self._entries(recursive=True, page_size=page_size):
            if not e.is_dir:
                yield FileRef(self._tree, e)

    def _header(self) -> str:
        extra = ""
        if self._entry is not None:
            extra = f"  ({_files(self._entry.file_count)}, {human_size(self._entry.size)})"
        return f"{self.ref}/{extra}"

    def __repr__(self) -> str:
        # No request here: lists of folders (``ds.ls()``) are printed often. ``tree()`` shows the content.
        return f"<Folder {self._header()}>"

    def tree(self, limit: int = REPR_ENTRIES) -> str:
        """The first ``limit`` entries of this level like ``ls``, fetched with one page request."""
        try:
            header = self._header()
            t = self._tree
            page = t.hub.list_files(t.owner, t.dataset_name, t.version, prefix=self.path, limit=limit)
        except Exception as e:  # a repr must not raise (debuggers, tracebacks call it)
            return f"<{type(self).__name__} {self.path or '/'} (listing failed: {type(e).__name__})>"
        lines = [header]
        items = page.items
        for i, e in enumerate(items):
            last = i == len(items) - 1 and not page.next_cursor
            branch = "└── " if last else "├── "
            name = e.path.rsplit("/", 1)[-1]
            if e.is_dir:
                lines.append(f"{branch}{name}/  ({_files(e.file_count)}, {human_size(e.size)})")
            else:
                lines.append(f"{branch}{name}  {human_size(e.size)}")
        if page.next_cursor:
            lines.append("└── …  (more entries: iterate, or .ls() for all)")
        return "\n".join(lines)


class DatasetTree(Folder):
    """The root folder of one dataset version (``client.dataset(ref)``, ``open_dataset(ref)``).

    Without a version the latest is resolved on first use and then pinned for the life
    of the tree, so every read sees one version.
    """

    def __init__(
        self,
        hub: HubClient,
        owner: str,
        name: str,
        version: int | None = None,
        *,
        fs_factory: Any = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        """``fs_factory()`` returns the :class:`~dshub.library.fs.DshubFileSystem` used for reads."""
        self.hub = hub
        self.owner = owner
        self.dataset_name = name
        self.page_size = page_size
        self._v = _Version(hub, owner, name, version)
        self._fs_factory = fs_factory
        super().__init__(self, "")

    @property
    def version(self) -> int:
        """The version number (asks the hub once if the tree was opened without one)."""
        return self._v.number

    @property
    def info(self) -> Version:
        """The version's metadata: size, file count, uploader, creation time (one request, cached)."""
        return self._v.info

    @property
    def size(self) -> int:
        """Bytes in this version."""
        return self.info.size

    @property
    def file_count(self) -> int:
        """Files in this version."""
        return self.info.file_count

    def _header(self) -> str:
        return f"{self.ref}  ({_files(self.file_count)}, {human_size(self.size)})"

    def __repr__(self) -> str:
        """The dataset like ``ls``: its totals and the first entries of the top level (two requests)."""
        return self.tree(REPR_ENTRIES)

    def _fs(self) -> DshubFileSystem:
        if self._fs_factory is None:
            raise RuntimeError("this tree has no filesystem for reads: open it with dshub.Client.dataset()")
        fs: DshubFileSystem = self._fs_factory()
        return fs


__all__ = ["DatasetTree", "Folder", "FileRef", "PathNotFoundError", "human_size", "REPR_ENTRIES"]
