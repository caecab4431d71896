"""``make demo-openai``: catalog_refresh with the ``openai`` backend pointed at the local edit service.

Starts the service on a free loopback port, points ``image_edit_default`` at it
(``backend: openai``, a dummy key the service requires), runs the same demo as
``make demo`` and prints how many requests the service served.
"""

from __future__ import annotations

import json
import os
import sys

from airflow_image_catalog.tooling.service.server import LocalEditService
from airflow_image_catalog.tooling.service.state import ServiceState

DEMO_KEY = "sk-local-demo"


def main() -> int:
    from airflow_image_catalog.tooling import demo

    with LocalEditService(0, state=ServiceState(api_key=DEMO_KEY)) as service:
        os.environ["AIRFLOW_CONN_IMAGE_EDIT_DEFAULT"] = json.dumps({
            "conn_type": "image_edit", "host": service.openai_base_url, "password": DEMO_KEY,
            "extra": {"backend": "openai", "model": "gpt-image-2", "quality": "medium", "max_concurrency": 4},
        })
        print(f"local edit service on {service.url}; image_edit_default -> backend openai", flush=True)
        code = demo.main()
        served = dict(service.state.served)
    print(f"  local edit service served {served.get('total', 0)} requests: "
          + ", ".join(f"{k} x{v}" for k, v in sorted(served.items()) if k != "total"))
    return code


if __name__ == "__main__":
    sys.exit(main())
