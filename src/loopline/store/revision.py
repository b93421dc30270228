"""The metadata schema's newest revision, in a module that imports nothing: the regular
path checks it through :mod:`loopline.store.db.migrate`, and readers that skip
SQLAlchemy to start fast (``loopline runs ls`` on SQLite) check the same value."""

#: The newest migration. A test checks it matches Alembic's head.
HEAD = "0013"
