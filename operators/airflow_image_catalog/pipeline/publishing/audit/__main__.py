"""``python -m airflow_image_catalog.pipeline.publishing.audit``: see :mod:`airflow_image_catalog.pipeline.publishing.audit.cli`."""

import sys

from airflow_image_catalog.pipeline.publishing.audit.cli import console

sys.exit(console())
