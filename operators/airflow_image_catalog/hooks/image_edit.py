"""ImageEditHook: picks the edit backend from an Airflow connection."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret

from airflow_image_catalog.backends import build_backend

BACKENDS = ("local", "openai", "openai_batch", "bfl", "firefly", "recraft")
DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "openai_batch": "https://api.openai.com/v1",
    "bfl": "https://api.bfl.ai",
    "firefly": "https://firefly-api.adobe.io",
    "recraft": "https://external.api.recraft.ai",
}


@dataclass
class BackendConfig:
    """What a connection says about its backend. ``api_key`` is masked and never printed."""

    backend: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    extras: dict[str, Any] = field(default_factory=dict)
    conn_id: str = ""


def with_overrides(config: BackendConfig, overrides: dict[str, Any] | None) -> BackendConfig:
    """``config`` with some settings replaced (``backend`` names another route, the rest are extras)."""
    if not overrides:
        return config
    changes = dict(overrides)
    return replace(config, backend=str(changes.pop("backend", config.backend)), extras={**config.extras, **changes})


class ImageEditHook(BaseHook):
    """Resolve an ``image_edit`` (or the OpenAI provider's ``openai``) connection to an edit backend.

    Connection fields: *host* is the provider's base URL (defaults per backend), the
    *password* is the API key, and *extra* holds ``backend`` (``local``, ``openai``,
    ``bfl``), ``model``, ``organization`` /
    ``project`` (OpenAI), ``api_type: azure`` + ``api_version`` (Azure OpenAI), the
    transport settings of :class:`~airflow_image_catalog.backends.http.HttpSettings` (timeouts,
    ``max_attempts``, ``requests_per_minute``, ``max_concurrency``, ...) and the
    backend's own options (see ``docs/backends.md``). A connection of type ``openai``
    means ``backend: openai`` unless its extra says otherwise. When the default
    connection ``image_edit_default`` is not defined at all, the local engine is used,
    so a fresh install works offline. The connection form (labels, placeholders) is declared in
    the provider info (:func:`airflow_image_catalog.get_provider_info`, ``ui-field-behaviour``).

    :param image_edit_conn_id: the connection id; see :attr:`default_conn_name`.
    """

    conn_name_attr = "image_edit_conn_id"
    default_conn_name = "image_edit_default"
    conn_type = "image_edit"
    hook_name = "Image Edit"

    def __init__(self, image_edit_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_edit_conn_id = image_edit_conn_id

    def config_from_connection(self, conn: Any) -> BackendConfig:
        extras = dict(conn.extra_dejson or {})
        client_kwargs = extras.pop("openai_client_kwargs", None) or {}
        default = "openai" if conn.conn_type == "openai" else "local"
        backend = str(extras.pop("backend", default))
        if backend not in BACKENDS:
            raise ValueError(f"connection {self.image_edit_conn_id!r}: unknown backend {backend!r} "
                             f"(available: {', '.join(BACKENDS)})")
        api_key = conn.password or extras.pop("api_key", None) or None
        if api_key:
            mask_secret(api_key)
        if conn.login:  # Firefly: the client id (the password is the client secret)
            extras.setdefault("client_id", conn.login)
        for key in ("organization", "project"):
            extras.setdefault(key, client_kwargs.get(key))
        base_url = conn.host or client_kwargs.get("base_url") or DEFAULT_URLS.get(backend, "")
        if base_url and "://" not in base_url:
            base_url = f"{conn.schema or 'https'}://{base_url}" + (f":{conn.port}" if conn.port else "")
        return BackendConfig(backend, base_url, api_key, extras, self.image_edit_conn_id)

    def backend_config(self) -> BackendConfig:
        try:
            conn = self.get_connection(self.image_edit_conn_id)
        except AirflowNotFoundException:
            if self.image_edit_conn_id != self.default_conn_name:
                raise
            self.log.info("connection %s is not defined: using the local engine", self.image_edit_conn_id)
            return BackendConfig("local", "", conn_id=self.image_edit_conn_id)
        return self.config_from_connection(conn)

    async def abackend_config(self) -> BackendConfig:
        """The same from a trigger (``aget_connection`` never blocks the event loop)."""
        return self.config_from_connection(await BaseHook.aget_connection(self.image_edit_conn_id))

    def backend_settings(self) -> dict[str, Any]:
        """The backend name and extras (never the key)."""
        config = self.backend_config()
        return {"backend": config.backend, **config.extras}

    def get_backend(self, overrides: dict[str, Any] | None = None):
        """The backend object the edit operator calls (see ``airflow_image_catalog.backends.base.EditBackend``).

        :param overrides: settings that replace the connection's for this call (the cost
            check's downgrade: ``backend`` (e.g. ``openai_batch``), ``model``, ``quality``, ``size``).
        """
        return build_backend(with_overrides(self.backend_config(), overrides))
