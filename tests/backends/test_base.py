"""The backend contract: each backend class declares what it can do, and the declaration is true."""

from __future__ import annotations

import inspect

import pytest

from airflow_image_catalog.backends import build_backend
from airflow_image_catalog.backends.base import (
    AsyncEditBackend,
    BatchBackend,
    Capabilities,
    EditBackend,
    JobBackend,
    SubmitBilledBackend,
    bills_at_submit,
    is_async,
    is_batch,
    is_jobs,
)
from airflow_image_catalog.hooks.image_edit import BackendConfig

ROUTES = ("local", "openai", "openai_batch", "bfl", "firefly", "recraft")


def _backend(route: str):
    return build_backend(BackendConfig(route, "http://127.0.0.1:9", "key", {"client_id": "c"}))


def _members(protocol: type) -> set[str]:
    """The methods and attributes a protocol adds to the ones it extends."""
    own = set(vars(protocol)) | set(getattr(protocol, "__annotations__", {}))
    return {name for name in own if not name.startswith("_")}


@pytest.mark.parametrize("route", ROUTES)
def test_each_declared_capability_brings_its_methods(route):
    backend = _backend(route)
    declared = type(backend).capabilities
    assert isinstance(declared, Capabilities)
    for flag, protocol in (("concurrent", AsyncEditBackend), ("jobs", JobBackend), ("batch", BatchBackend),
                           ("bills_at_submit", SubmitBilledBackend)):
        missing = {name for name in _members(protocol) if not hasattr(backend, name)}
        if getattr(declared, flag):
            assert not missing, f"{route} declares {flag} without {sorted(missing)}"
            for name in _members(protocol) - {"transport", "jobs_in_flight"}:
                method = getattr(backend, name)
                assert callable(method) and inspect.iscoroutinefunction(method) == name.startswith("a"), name
            if flag == "jobs":  # a data member: the provider's jobs-in-flight limit, or None for none
                limit = backend.jobs_in_flight
                assert limit is None or (isinstance(limit, int) and limit >= 1), limit
    for name in _members(EditBackend) - {"capabilities"}:
        assert hasattr(backend, name), name


@pytest.mark.parametrize("route", ROUTES)
def test_the_type_guards_read_the_declaration(route):
    backend = _backend(route)
    can = backend.capabilities
    assert (is_async(backend), is_jobs(backend), is_batch(backend), bills_at_submit(backend)) == (
        can.concurrent, can.jobs, can.batch, can.bills_at_submit)


def test_what_each_route_declares():
    can = {route: _backend(route).capabilities for route in ROUTES}
    assert not can["local"].paid and not can["local"].prompt_driven and not can["local"].concurrent
    assert all(can[r].paid and can[r].concurrent for r in ROUTES if r != "local")
    assert {r for r in ROUTES if can[r].jobs} == {"openai_batch", "bfl", "firefly"}
    assert {r for r in ROUTES if can[r].batch} == {r for r in ROUTES if can[r].jobs_only} == {"openai_batch"}
    assert {r for r in ROUTES if can[r].bills_at_submit} == {"bfl"}
    assert can["openai_batch"].job_timeout_s >= 24 * 3600  # the Batch API's completion window


@pytest.mark.parametrize("bad", [{"batch": True}, {"jobs_only": True}, {"bills_at_submit": True},
                                 {"job_timeout_s": 60.0}, {"jobs": True}])
def test_inconsistent_declarations_are_refused(bad):
    with pytest.raises(ValueError, match="set (jobs|concurrent)=True"):
        Capabilities(**bad)
