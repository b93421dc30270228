"""The two stores every other layer stands on: ``db`` (metadata) and ``objects`` (bytes)."""
