"""Airflow provider for scheduled, audited AI image editing of product catalogs."""

from __future__ import annotations

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Provider metadata read by Airflow's ProvidersManager (``apache_airflow_provider`` entry point)."""
    return {
        "package-name": "airflow-image-catalog",
        "name": "Image Catalog",
        "description": "Operators that edit, cost-check, quality-gate and publish product images.",
        "versions": [__version__],
        "operators": [
            {
                "integration-name": "Image Catalog",
                "python-modules": [
                    "airflow_image_catalog.operators.discover",
                    "airflow_image_catalog.operators.image_edit",
                    "airflow_image_catalog.operators.publish",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "Image Catalog", "python-modules": ["airflow_image_catalog.sensors.new_images"]}
        ],
        "hooks": [
            {"integration-name": "Image Catalog", "python-modules": ["airflow_image_catalog.hooks.image_edit"]}
        ],
        "connection-types": [
            {
                "connection-type": "image_edit",
                "hook-class-name": "airflow_image_catalog.hooks.image_edit.ImageEditHook",
                "hook-name": "Image Edit",
            }
        ],
        "notifications": [
            "airflow_image_catalog.notifications.webhook.WebhookNotifier",
            "airflow_image_catalog.notifications.catalog.CatalogAlertNotifier",
        ],
        "triggers": [
            {"integration-name": "Image Catalog", "python-modules": ["airflow_image_catalog.triggers.edit_jobs", "airflow_image_catalog.triggers.new_objects"]}
        ],
        "integrations": [
            {
                "integration-name": "Image Catalog",
                "external-doc-url": "https://github.com/",
                "tags": ["software"],
            }
        ],
    }
