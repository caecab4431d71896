"""Reliability and security, proven with figures (``python -m operators.reliability``).

- :mod:`~operators.reliability.corpus`: the bad-input corpus (every kind generated here, with
  the outcome each must get);
- :mod:`~operators.reliability.scenarios`: the fault matrix, one :class:`Scenario` per fault;
- :mod:`~operators.reliability.runner`: runs a scenario against the local edit service (and the
  local S3 server) through the real ``catalog_refresh`` DAG, or at the chunk level through the
  edit task's own ``execute``, then reruns until nothing is retryable;
- :mod:`~operators.reliability.invariants`: what every run must satisfy (one final state per
  image, none lost, paid calls = ledger rows = outputs, no duplicate charge);
- :mod:`~operators.reliability.secrets`: the secrets scan of everything a run leaves behind;
- :mod:`~operators.reliability.chaos` and :mod:`~operators.reliability.soak`: random fault mixes
  with SIGKILLs, and many images at once;
- :mod:`~operators.reliability.table`: the table ``make reliability`` prints.

Nothing here imports Airflow at module level: the runner sets up an isolated Airflow home first.
"""
