"""get_provider_info(): complete (every Airflow-facing class of the package is listed), importable,
valid against Airflow's own schema, and read by Airflow's ProvidersManager as we mean it."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import airflow
import jsonschema
from airflow.sdk import BaseHook, BaseNotifier, BaseOperator, BaseOperatorLink
from airflow.triggers.base import BaseTrigger

import airflow_image_catalog
from airflow_image_catalog import get_provider_info
from airflow_image_catalog.tooling.stack import clean_environment

INFO = get_provider_info()
PACKAGE = "airflow-image-catalog"


def _runtime_modules() -> list[str]:
    """Every module of the package but the tooling (no Airflow class lives there on purpose)."""
    names = []
    for module in pkgutil.walk_packages(airflow_image_catalog.__path__, "airflow_image_catalog."):
        if not module.name.startswith("airflow_image_catalog.tooling") and not module.name.endswith("__main__"):
            names.append(module.name)
    return names


def _public_classes(base: type) -> dict[str, str]:
    """``module.Class`` -> module of each public subclass of ``base`` the package defines."""
    found = {}
    for name in _runtime_modules():
        module = importlib.import_module(name)
        for cls_name, cls in vars(module).items():
            if (inspect.isclass(cls) and issubclass(cls, base) and cls.__module__ == name
                    and not cls_name.startswith("_") and not inspect.isabstract(cls)):
                found[f"{name}.{cls_name}"] = name
    return found


def _modules(section: str) -> list[str]:
    return [module for entry in INFO[section] for module in entry["python-modules"]]


def _import(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_valid_against_airflows_provider_info_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(INFO, schema)
    integrations = {i["integration-name"] for i in INFO["integrations"]}
    for section in ("operators", "sensors", "hooks", "triggers"):
        assert {e["integration-name"] for e in INFO[section]} <= integrations, section


def test_every_operator_sensor_hook_and_trigger_module_is_listed():
    from airflow.sdk import BaseSensorOperator

    operators = set(_public_classes(BaseOperator).values())
    sensors = set(_public_classes(BaseSensorOperator).values())
    assert "airflow_image_catalog.operators.cost_check" in operators  # the walk sees them
    assert sorted(operators - sensors) == sorted(_modules("operators"))
    assert sorted(sensors) == sorted(_modules("sensors"))
    assert sorted(set(_public_classes(BaseHook).values())) == sorted(_modules("hooks"))
    assert sorted(set(_public_classes(BaseTrigger).values())) == sorted(_modules("triggers"))


def test_every_notifier_and_extra_link_class_is_listed():
    assert sorted(_public_classes(BaseNotifier)) == sorted(INFO["notifications"])
    assert sorted(_public_classes(BaseOperatorLink)) == sorted(INFO["extra-links"])


def test_every_listed_path_imports_to_what_it_says():
    for section, base in (("operators", BaseOperator), ("sensors", BaseOperator), ("hooks", BaseHook),
                          ("triggers", BaseTrigger)):
        for module in _modules(section):
            defined = [c for c in vars(importlib.import_module(module)).values()
                       if inspect.isclass(c) and issubclass(c, base) and c.__module__ == module]
            assert defined, f"{section}: {module} defines no {base.__name__}"
    for path in INFO["notifications"]:
        assert issubclass(_import(path), BaseNotifier), path
    for path in INFO["extra-links"]:
        assert issubclass(_import(path), BaseOperatorLink), path
    for conn in INFO["connection-types"]:
        hook = _import(conn["hook-class-name"])
        assert issubclass(hook, BaseHook) and hook.conn_type == conn["connection-type"]
        assert hook.hook_name == conn["hook-name"]


PROVIDERS_MANAGER = """
import json
from airflow.providers_manager import ProvidersManager

pm = ProvidersManager()
info = pm.providers[%(package)r]
hook = pm.hooks["image_edit"]
print(json.dumps({
    "data": info.data,
    "extra_links": [n for n in pm.extra_links_class_names if n.startswith("airflow_image_catalog.")],
    "notifications": [n for n in pm.notification if n.startswith("airflow_image_catalog.")],  # class names
    "triggers": [t.trigger_class_name for t in pm.trigger if t.package_name == %(package)r],
    "hook": [hook.hook_class_name, hook.connection_type, hook.hook_name] if hook else None,
    "field_behaviour": pm.field_behaviours.get("image_edit"),
}))
"""


def test_airflows_providers_manager_reads_it_as_meant():
    """The installed (editable) package, through the ``apache_airflow_provider`` entry point: every
    class path passes the manager's import check, and the connection form comes from the provider info."""
    proc = subprocess.run([sys.executable, "-c", PROVIDERS_MANAGER % {"package": PACKAGE}], capture_output=True,
                          text=True, env=clean_environment(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["data"] == {**json.loads(json.dumps(INFO)), "documentation-url": None}  # the manager adds the key
    assert sorted(seen["extra_links"]) == sorted(INFO["extra-links"])  # only paths that imported are kept
    assert sorted(seen["notifications"]) == sorted(INFO["notifications"])
    assert sorted(seen["triggers"]) == sorted(_modules("triggers"))
    assert seen["hook"] == ["airflow_image_catalog.hooks.image_edit.ImageEditHook", "image_edit", "Image Edit"]
    behaviour = seen["field_behaviour"]
    assert behaviour["hidden_fields"] == ["schema", "port"]
    assert behaviour["relabeling"]["password"] == "API key / client secret"
    assert '"backend": "openai"' in behaviour["placeholders"]["extra"]
