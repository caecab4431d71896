"""The package's one base exception.

Every error the package raises on purpose derives from :class:`CatalogError`, so a caller (a DAG's
``on_failure_callback``, a script around the plain functions) can tell "the catalog refused this,
with a reason" from a bug with one ``except``. Each subclass also keeps the builtin base it always
had (``ValueError`` for bad input, ``OSError`` for storage, ``RuntimeError`` for a failed edit), so
existing ``except ValueError`` handlers still catch what they caught.
"""

from __future__ import annotations


class CatalogError(Exception):
    """Base of every error raised on purpose by ``airflow_image_catalog``."""
