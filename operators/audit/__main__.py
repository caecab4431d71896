"""``python -m operators.audit``: see :mod:`operators.audit.cli`."""

import sys

from operators.audit.cli import main

sys.exit(main())
