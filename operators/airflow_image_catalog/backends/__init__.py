"""Edit backends: one module per provider contract, all behind :class:`EditBackend`.

:func:`build_backend` turns a connection's :class:`~airflow_image_catalog.hooks.image_edit.BackendConfig`
into a backend; network backends share :mod:`airflow_image_catalog.backends.http`.
"""

from __future__ import annotations

from typing import Any

from airflow_image_catalog.backends.base import (
    AsyncEditBackend,
    BatchBackend,
    Capabilities,
    EditBackend,
    EditError,
    EditResult,
    ImageContext,
    JobBackend,
    JobStatus,
)

__all__ = ["AsyncEditBackend", "BatchBackend", "Capabilities", "EditBackend", "EditError", "EditResult",
           "ImageContext", "JobBackend", "JobStatus", "build_backend"]


def _options(extras: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: extras[name] for name in names if extras.get(name) not in (None, "")}


#: Azure OpenAI's data-plane api-version for ``/openai/deployments/...`` paths when the connection names none
AZURE_API_VERSION = "2025-04-01-preview"


def openai_endpoint(config, *, deployments: bool = True) -> tuple[str, dict[str, str], dict[str, str]]:
    """Base URL, auth headers and query parameters of an OpenAI-compatible connection, as the SDK builds them.

    * OpenAI and compatible servers: ``Authorization: Bearer <key>`` (``openai.OpenAI``).
    * Azure OpenAI's v1 API (a host ending in ``/openai/v1``): the plain OpenAI client's conventions,
      no ``api-version`` (Microsoft's "API version lifecycle" page).
    * Azure OpenAI deployments (``api_type: azure``; ``openai.AzureOpenAI``): ``api-key: <key>`` and
      ``?api-version=``; a host that is the resource endpoint (``https://<resource>.openai.azure.com``
      or ``.../openai``) gets ``/openai/deployments/<model>`` appended, the SDK's rule for
      ``images/edits`` when no ``azure_deployment`` is given (``openai/lib/azure.py``). Files and
      batches are not deployment endpoints (``deployments=False``): they live under ``.../openai``.
    """
    extras = config.extras
    key = config.api_key or ""
    base = config.base_url.rstrip("/")
    if extras.get("api_type") != "azure" or base.endswith("/openai/v1"):
        return base, {"Authorization": f"Bearer {key}"}, {}
    if not deployments:
        base = base.split("/deployments/")[0]
        base = base if base.endswith("/openai") else base + "/openai"
    elif "/deployments/" not in base + "/":
        from airflow_image_catalog.backends.openai_images import DEFAULT_MODEL

        deployment = extras.get("model") or DEFAULT_MODEL
        base = (base if base.endswith("/openai") else base + "/openai") + f"/deployments/{deployment}"
    return base, {"api-key": key}, {"api-version": str(extras.get("api_version") or AZURE_API_VERSION)}


def openai_transport(config, provider: str = "openai"):
    from airflow_image_catalog.backends.http import HttpSettings, HttpTransport

    extras = config.extras
    base, auth, params = openai_endpoint(config, deployments=provider != "openai_batch")
    headers = {"OpenAI-Organization": extras.get("organization"), "OpenAI-Project": extras.get("project")}
    return HttpTransport(provider, HttpSettings.from_extras(base, extras), auth_headers=auth,
                         headers={k: str(v) for k, v in headers.items() if v}, params=params)


def build_backend(config) -> EditBackend:
    """The backend a :class:`~airflow_image_catalog.hooks.image_edit.BackendConfig` names."""
    from airflow_image_catalog.backends.http import HttpSettings, HttpTransport

    extras = config.extras
    if config.backend == "local":
        from airflow_image_catalog.backends.local import MAX_PIXELS, LocalEngineBackend

        return LocalEngineBackend(max_pixels=int(extras.get("max_pixels", MAX_PIXELS)))
    if config.backend in ("openai", "openai_batch"):
        from airflow_image_catalog.backends.openai_batch import OpenAIBatchBackend
        from airflow_image_catalog.backends.openai_images import OpenAIImagesBackend

        cls = OpenAIBatchBackend if config.backend == "openai_batch" else OpenAIImagesBackend
        return cls(openai_transport(config, config.backend), **_options(
            extras, "model", "size", "quality", "background", "input_fidelity", "n", "safety_identifier", "user"))
    settings = HttpSettings.from_extras(config.base_url, extras)
    if config.backend == "bfl":
        from airflow_image_catalog.backends.bfl import BFLBackend

        transport = HttpTransport("bfl", settings, auth_headers={"x-key": config.api_key or ""})
        return BFLBackend(transport, **_options(extras, "model", "safety_tolerance", "seed", "aspect_ratio",
                                                "max_tasks"))
    if config.backend == "firefly":
        from airflow_image_catalog.backends.firefly import FireflyBackend

        transport = HttpTransport("firefly", settings, auth_headers={"x-api-key": str(extras.get("client_id") or "")})
        return FireflyBackend(transport, client_id=str(extras.get("client_id") or ""),
                              client_secret=config.api_key or "", **_options(extras, "token_url", "scopes", "seed"))
    if config.backend == "recraft":
        from airflow_image_catalog.backends.recraft import RecraftBackend

        transport = HttpTransport("recraft", settings, auth_headers={"Authorization": f"Bearer {config.api_key or ''}"})
        return RecraftBackend(transport, **_options(extras, "model", "strength", "style"))
    raise ValueError(f"unknown backend {config.backend!r}")
