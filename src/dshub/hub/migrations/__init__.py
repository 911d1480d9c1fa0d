"""Alembic migrations of the hub's registry, shipped inside the package.

``env.py`` and ``versions/`` are read by Alembic through :mod:`dshub.hub.schema`; there
is no ``alembic.ini``: the hub configures Alembic in code with its own engine.
"""
