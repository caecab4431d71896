"""The pipeline stages of a catalog refresh, in data-flow order: discovery, costing, editing, quality, publishing. Plain Python, no Airflow import."""
