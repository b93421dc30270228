"""The metadata database: engine and transactions (``engine``), the one ``MetaData`` every
layer declares its tables on (``schema``), migrations (``migrate``) and the audit log
(``events``)."""

from loopline.store.db.engine import Database

__all__ = ["Database"]
