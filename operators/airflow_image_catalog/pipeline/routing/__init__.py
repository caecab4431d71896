"""Routing: which backend, model and quality to edit a recipe's images with, decided from data.

Plain Python, no Airflow import. :mod:`.candidates` the candidate list (weakest/cheapest first: the
escalation order), :mod:`.features` the free image features routing and sampling stratify on,
:mod:`.figures` the per-candidate figures and the choice (Wilson bounds), :mod:`.decision` the
versioned routing decision in object storage that the canary writes and ``catalog_refresh`` reads.
"""
