"""``python -m airflow_image_catalog.pipeline.publishing.audit``: see :mod:`airflow_image_catalog.pipeline.publishing.audit.cli`.

The answer is written to the process's stdout as it was at start; for the command's duration file
descriptor 1 points at stderr, so nothing else (a library's print, a log handler that kept the
original stdout, a C extension) can land between the JSON lines.
"""

import os
import sys

from airflow_image_catalog.pipeline.publishing.audit.cli import main

sys.stdout.flush()
answer = os.fdopen(os.dup(1), "w", encoding="utf-8", closefd=True)
os.dup2(2, 1)
try:
    code = main(out=answer)
finally:
    answer.flush()
sys.exit(code)
