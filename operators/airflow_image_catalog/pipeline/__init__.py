"""The pipeline stages of a catalog refresh, in data-flow order: discovery, rights, costing, editing, quality, publishing. Plain Python, no Airflow import."""
