import sys

from operators.service.server import main

sys.exit(main())
