import sys

from airflow_image_catalog.tooling.service.server import main

sys.exit(main())
