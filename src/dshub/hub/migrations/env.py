"""Alembic environment: runs with the connection :mod:`dshub.hub.schema` hands it.

Online only through ``config.attributes["connection"]`` (the hub's own engine, so the
URL is never written to a config file); offline (``--sql``) renders for the URL's dialect.
"""

from __future__ import annotations

from alembic import context

from dshub.hub.db import Base

config = context.config
target_metadata = Base.metadata


def _options() -> dict[str, object]:
    # SQLite cannot ALTER most things in place: batch mode rebuilds the table instead.
    return {"target_metadata": target_metadata, "render_as_batch": True, "compare_type": True}


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **_options())
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes["connection"]
    context.configure(connection=connection, **_options())
    with context.begin_transaction():
        context.run_migrations()
