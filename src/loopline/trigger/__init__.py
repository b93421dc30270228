"""Event-triggered inference: batch transform of files, and a watcher that scores new files.

    from loopline.trigger.batch import predict_file
    from loopline.trigger.watch import Watcher

``batch`` scores one CSV/Parquet file in bounded memory, with the endpoint's validation and
prediction logging; ``watch`` scores every new file of a folder or S3 prefix exactly once,
recorded in ``ll_trigger_files`` (``tables``). See docs/trigger.md.
"""

from __future__ import annotations
