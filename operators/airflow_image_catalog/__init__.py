"""Airflow provider for scheduled, audited AI image editing of product catalogs."""

from __future__ import annotations

__version__ = "0.1.0"

INTEGRATION = "Image Catalog"


def get_provider_info() -> dict:
    """Provider metadata read by Airflow's ProvidersManager (``apache_airflow_provider`` entry point).

    A literal, as in apache/airflow's providers (``providers/openai``, ``providers/amazon``): Airflow
    calls it at every start-up, so it imports nothing. ``tests/test_provider_info.py`` checks that it
    lists every operator, sensor, hook, trigger, notifier and extra link of the package and that every
    path imports. The connection form is declared here (``ui-field-behaviour``): Airflow 3.2+ reads
    it from the provider info and deprecates a hook's ``get_ui_field_behaviour``.
    """
    return {
        "package-name": "airflow-image-catalog",
        "name": INTEGRATION,
        "description": "Operators that discover, rights-check, cost-check, edit, quality-gate, review and publish product images.",
        "versions": [__version__],
        "integrations": [{"integration-name": INTEGRATION, "tags": ["software"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_image_catalog.operators.check_config",
                    "airflow_image_catalog.operators.discover",
                    "airflow_image_catalog.operators.rights_check",
                    "airflow_image_catalog.operators.consent",
                    "airflow_image_catalog.operators.cost_check",
                    "airflow_image_catalog.operators.image_edit",
                    "airflow_image_catalog.operators.quality_gate",
                    "airflow_image_catalog.operators.review",
                    "airflow_image_catalog.operators.publish",
                    "airflow_image_catalog.operators.canary",
                    "airflow_image_catalog.operators.escalate",
                ],
            }
        ],
        "sensors": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_image_catalog.sensors.new_images"]}
        ],
        "hooks": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_image_catalog.hooks.image_edit"]}
        ],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_image_catalog.triggers.edit_jobs",
                    "airflow_image_catalog.triggers.new_objects",
                ],
            }
        ],
        "connection-types": [
            {
                "connection-type": "image_edit",
                "hook-class-name": "airflow_image_catalog.hooks.image_edit.ImageEditHook",
                "hook-name": "Image Edit",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Base URL",
                        "login": "Client ID (Firefly)",
                        "password": "API key / client secret",
                    },
                    "placeholders": {
                        "host": "https://api.openai.com/v1 (empty: the backend's default)",
                        "password": "the provider's API key (never logged)",
                        "extra": '{"backend": "openai", "model": "gpt-image-2", "quality": "medium", "timeout": 600, '
                                 '"max_attempts": 5, "requests_per_minute": 60, "max_concurrency": 8}',
                    },
                },
            }
        ],
        "notifications": [
            "airflow_image_catalog.notifications.webhook.WebhookNotifier",
            "airflow_image_catalog.notifications.catalog.CatalogAlertNotifier",
        ],
        "extra-links": [
            "airflow_image_catalog.links.run_page.CostReportLink",
            "airflow_image_catalog.links.run_page.EditReportLink",
            "airflow_image_catalog.links.run_page.QualityReportLink",
        ],
    }
