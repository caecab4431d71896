"""Benchmarks run by ``make bench``: figures printed and written to ``$CATALOG_HOME/bench/``, never pass/fail tests.

:mod:`airflow_image_catalog.tooling.bench.throughput` measures the edit stage against the local edit service
(throughput against a rate limit, orchestration overhead, peak memory) beside the two ways
not to do it (one image per mapped task, a sequential loop).
"""
