"""Reliability and security, proven with figures (``python -m airflow_image_catalog.tooling.reliability``).

- :mod:`~airflow_image_catalog.tooling.reliability.corpus`: the bad-input corpus (every kind generated here, with
  the outcome each must get);
- :mod:`~airflow_image_catalog.tooling.reliability.scenarios`: the fault matrix, one :class:`Scenario` per fault;
- :mod:`~airflow_image_catalog.tooling.reliability.runner`: runs a scenario against the local edit service (and the
  local S3 server) through the real ``catalog_refresh`` DAG, or at the chunk level through the
  edit task's own ``execute``, then reruns until nothing is retryable;
- :mod:`~airflow_image_catalog.tooling.reliability.invariants`: what every run must satisfy (one final state per
  image, none lost, paid calls = ledger rows = outputs, no duplicate charge);
- :mod:`~airflow_image_catalog.tooling.reliability.secrets`: the secrets scan of everything a run leaves behind;
- :mod:`~airflow_image_catalog.tooling.reliability.chaos` and :mod:`~airflow_image_catalog.tooling.reliability.soak`: random fault mixes
  with SIGKILLs, and many images at once;
- :mod:`~airflow_image_catalog.tooling.reliability.table`: the table ``make reliability`` prints.

Nothing here imports Airflow at module level: the runner sets up an isolated Airflow home first.
"""
