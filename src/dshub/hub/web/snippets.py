"""The copy-and-paste lines of a dataset or file page: CLI, Python, pandas, rclone.

No secret is ever part of a snippet: the rclone lines fetch short-lived keys with
``dshub creds`` when they run.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from dshub.hub.web.preview import extension


@dataclass(frozen=True)
class Snippet:
    label: str
    text: str


def _py_str(text: str) -> str:
    # JSON string syntax is valid Python string syntax (\\uXXXX escapes included).
    return json.dumps(text, ensure_ascii=False)


def dataset_snippets(owner: str, name: str, version: int, bucket: str, prefix: str) -> list[Snippet]:
    """Lines that fetch, open and copy ``owner/name@v<version>``, stored under ``bucket/prefix``."""
    ref = f"{owner}/{name}@v{version}"
    return [
        Snippet("Download", f"dshub download {ref}"),
        Snippet("Python", f"import dshub\ntree = dshub.open_dataset({_py_str(ref)})"),
        rclone_snippet(owner, name, version, bucket, prefix),
    ]


def rclone_snippet(owner: str, name: str, version: int, bucket: str, prefix: str) -> Snippet:
    """``dshub creds … --format env`` (keys into the environment, never on screen) and the copy."""
    ref = f"{owner}/{name}@v{version}"
    return Snippet(
        "rclone",
        f'eval "$(dshub creds {ref} --format env)"\nrclone copy dshub:{bucket}/{prefix.strip("/")}/ ./{name}',
    )


def file_snippets(owner: str, name: str, version: int, path: str) -> list[Snippet]:
    """Lines that read one file: pandas for tables, fsspec for anything."""
    url = f"dshub://{owner}/{name}@v{version}/{path}"
    ext = extension(path)
    out: list[Snippet] = []
    if ext == "csv":
        out.append(Snippet("pandas", f"import pandas as pd\ndf = pd.read_csv({_py_str(url)})"))
    elif ext == "tsv":
        out.append(Snippet("pandas", f"import pandas as pd\ndf = pd.read_csv({_py_str(url)}, sep=\"\\t\")"))
    elif ext in ("parquet", "pq"):
        out.append(Snippet("pandas", f"import pandas as pd\ndf = pd.read_parquet({_py_str(url)})"))
    out.append(Snippet("fsspec", f"import fsspec\nwith fsspec.open({_py_str(url)}, \"rb\") as f:\n    data = f.read()"))
    out.append(Snippet("Download", f"dshub download {shlex.quote(f'{owner}/{name}@v{version}:{path}')}"))
    return out
