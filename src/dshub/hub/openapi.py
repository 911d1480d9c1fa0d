"""``python -m dshub.hub.openapi``: print the hub's OpenAPI document (no broker, no disk)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path


def openapi_json() -> str:
    """The OpenAPI document of ``create_app`` as stable, indented JSON (with a final newline)."""
    from dshub.hub.app import create_app
    from dshub.hub.settings import HubSettings

    with tempfile.TemporaryDirectory() as tmp:
        # The engine is created lazily by SQLAlchemy: nothing is written to tmp.
        app = create_app(HubSettings(data_dir=Path(tmp)))
        doc = app.openapi()
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    print(openapi_json(), end="")


if __name__ == "__main__":
    main()
