"""Alerting for catalog runs: a summary of what went wrong, delivered through Airflow notifiers.

``summary`` builds the message (pure), ``webhook`` posts it as JSON over httpx, ``catalog``
chooses the kind from the task context and fans it out to webhook / SMTP / Slack / Apprise,
and builds the nightly deadline alert.
"""

from __future__ import annotations
