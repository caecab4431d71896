"""The local edit service: the OpenAI images/edits and BFL contracts, backed by the local engine.

Start it with ``python -m airflow_image_catalog.tooling.service --port 8765``; tests use
:class:`~airflow_image_catalog.tooling.service.server.LocalEditService` on a free loopback port. It counts
the requests it served and the edits it performed (the paid work), honours
``Idempotency-Key``, can enforce its rate limit, add latency (abandoning requests whose
client disconnects meanwhile) and inject faults; see :mod:`airflow_image_catalog.tooling.service.app` for the
order of those layers and :mod:`airflow_image_catalog.tooling.service.faults` for the fault kinds.
"""
