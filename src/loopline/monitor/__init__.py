"""Monitoring: what happened to a model in production.

This package owns the *prediction log* (:mod:`loopline.monitor.predictions`: a buffered
writer of Parquet files partitioned by model and hour, a reader, and the index of
request ids in the database) and the *feedback* store (:mod:`loopline.monitor.feedback`:
ground-truth labels for earlier requests). Drift, data quality and performance are built
on top of them.

Importing this package is cheap: numpy, pyarrow and SQLAlchemy are imported by the
modules that need them, when they are used.
"""
