"""ImageEditHook: picks the edit backend from an Airflow connection."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

BACKENDS = ("local",)


class ImageEditHook(BaseHook):
    """Resolve an ``image_edit`` connection to an edit backend.

    The connection's extra ``backend`` names the backend (``local`` is the embedded,
    offline engine). When the default connection ``image_edit_default`` is not
    defined at all, the local engine is used, so a fresh install works offline.

    :param image_edit_conn_id: the connection id; see :attr:`default_conn_name`.
    """

    conn_name_attr = "image_edit_conn_id"
    default_conn_name = "image_edit_default"
    conn_type = "image_edit"
    hook_name = "Image Edit"

    def __init__(self, image_edit_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_edit_conn_id = image_edit_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "port", "login"],
            "relabeling": {"host": "Base URL", "password": "API key"},
            "placeholders": {"extra": '{"backend": "local"}'},
        }

    def backend_settings(self) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.image_edit_conn_id)
        except AirflowNotFoundException:
            if self.image_edit_conn_id != self.default_conn_name:
                raise
            self.log.info("connection %s is not defined: using the local engine", self.image_edit_conn_id)
            return {"backend": "local"}
        return {"backend": "local", **conn.extra_dejson}

    def get_backend(self):
        """The backend object the edit operator calls (see ``operators.backends.base.EditBackend``)."""
        settings = self.backend_settings()
        name = settings["backend"]
        if name == "local":
            from operators.backends.local import MAX_PIXELS, LocalEngineBackend

            return LocalEngineBackend(max_pixels=int(settings.get("max_pixels", MAX_PIXELS)))
        raise ValueError(
            f"connection {self.image_edit_conn_id!r}: unknown backend {name!r} (available: {', '.join(BACKENDS)})"
        )
