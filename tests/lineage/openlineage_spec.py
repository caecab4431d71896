"""Validate emitted OpenLineage events offline, against the official model and the facets' own schemas.

No copy of the spec is vendored and nothing is fetched. The core model and the standard facets come from
the official ``openlineage-python`` client, whose ``openlineage.client.generated`` classes are generated
from the spec's JSON Schemas (``OpenLineage.json`` and ``spec/facets/*.json``, each class naming its schema
in ``_get_schema()``): every core object and standard facet of an event is rebuilt through them, with
their field types checked here and their own validators run (run id a UUID, ISO event time, URI fields).
A core object with a field the spec does not define is an error; facets stay open, as the spec says.
A facet whose ``_schemaURL`` is a spec base class (Airflow's own facets point at ``RunFacet``) is
checked as that class. Any other facet is validated with ``jsonschema`` against the schema its
``_schemaURL`` names (ours: as the plugin app serves it); those schemas ``$ref`` the spec's
``RunFacet``, whose definition is rebuilt from the client's ``BaseFacet`` (the two fields it always
sets: a URI each).
"""

from __future__ import annotations

import enum
import importlib
import pkgutil
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attr

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


class SpecError(AssertionError):
    """An event that does not conform; the message names the path inside the event."""


def _generated_classes() -> dict[str, type]:
    """Every class of the client's generated model, by the schema URL it was generated from."""
    import openlineage.client.generated as generated

    found: dict[str, type] = {}
    for module_info in pkgutil.iter_modules(generated.__path__):
        module = importlib.import_module(f"{generated.__name__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and attr.has(value) and hasattr(value, "_get_schema"):
                found[value._get_schema()] = value
    return found


def _spec_defs() -> dict[str, Any]:
    """The spec's facet base definitions, from the client's ``BaseFacet`` (``_producer``, ``_schemaURL``)."""
    from openlineage.client.generated import base

    uri = {"type": "string", "format": "uri"}
    fields = [f.name for f in attr.fields(base.BaseFacet)]
    assert fields == ["_producer", "_schemaURL"], fields  # the client's model changed: revisit this
    defs: dict[str, Any] = {"BaseFacet": {"type": "object", "properties": dict.fromkeys(fields, uri),
                                          "required": fields}}
    for name in ("RunFacet", "JobFacet", "DatasetFacet", "InputDatasetFacet", "OutputDatasetFacet"):
        defs[name] = {"allOf": [{"$ref": "#/$defs/BaseFacet"}], "type": "object"}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SPEC, "$defs": defs}


class EventValidator:
    """``validate(event)`` raises :class:`SpecError`; ``seen`` counts what was checked, and how."""

    def __init__(self, fetch_schema: Callable[[str], dict[str, Any] | None]):
        """:param fetch_schema: the JSON document at a custom facet's ``_schemaURL`` (without the
        fragment), or None when it cannot be resolved."""
        from openlineage.client.generated import base

        self.base = base
        self.classes = _generated_classes()
        self.fetch_schema = fetch_schema
        self.seen: dict[str, int] = {}
        self._documents: dict[str, Any] = {}

    # -- the core model, rebuilt through the client's classes --------------------------------------
    def validate(self, event: Mapping[str, Any]) -> None:
        if event.get("schemaURL") != self.base.RunEvent._get_schema():
            raise SpecError(f"schemaURL {event.get('schemaURL')!r} is not the client's RunEvent schema")
        self._build(self.base.RunEvent, event, "event", core=True)

    def _build(self, cls: type, data: Any, path: str, *, core: bool) -> Any:
        if not isinstance(data, Mapping):
            raise SpecError(f"{path}: expected an object for {cls.__name__}, got {type(data).__name__}")
        fields = {f.name: f for f in attr.fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            field = fields.get(key)
            if field is None:
                if core:
                    raise SpecError(f"{path}.{key}: {cls.__name__} has no such field in the spec")
                continue  # facets allow additional properties
            if not field.init:  # schemaURL / _schemaURL: fixed by the class, compared by the caller
                continue
            kwargs[field.alias] = self._convert(hints[key], value, f"{path}.{key}", key)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:  # a required field missing, a validator refusing a value
            raise SpecError(f"{path}: {cls.__name__}: {exc}") from None

    def _convert(self, hint: Any, value: Any, path: str, key: str) -> Any:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            options = [a for a in args if a is not type(None)]
            if value is None:
                raise SpecError(f"{path}: null where the spec wants {hint}")
            errors = []
            for option in options:
                try:
                    return self._convert(option, value, path, key)
                except SpecError as exc:
                    errors.append(str(exc))
            raise SpecError("; ".join(errors))
        if origin is list:
            if not isinstance(value, list):
                raise SpecError(f"{path}: expected an array")
            return [self._convert(args[0], item, f"{path}[{i}]", key) for i, item in enumerate(value)]
        if origin is dict:
            if not isinstance(value, Mapping):
                raise SpecError(f"{path}: expected an object")
            item_type = args[1] if len(args) == 2 else Any
            if isinstance(item_type, type) and issubclass(item_type, self.base.BaseFacet):
                return {name: self._facet(item_type, name, facet, f"{path}.{name}") for name, facet in value.items()}
            return {k: self._convert(item_type, v, f"{path}.{k}", key) for k, v in value.items()}
        if hint is Any or hint is dict or hint is object:
            return value
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            try:
                return hint(value)
            except ValueError:
                raise SpecError(f"{path}: {value!r} is not one of {[m.value for m in hint]}") from None
        if isinstance(hint, type) and attr.has(hint):
            return self._build(hint, value, path, core=not issubclass(hint, self.base.BaseFacet))
        if hint is bool:
            ok = isinstance(value, bool)
        elif hint is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif hint is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif hint is str:
            ok = isinstance(value, str)
        else:
            raise SpecError(f"{path}: no check for type {hint!r}")
        if not ok:
            raise SpecError(f"{path}: {value!r} is not a {hint.__name__}")
        return value

    # -- facets: the client's class, else the schema the facet names --------------------------------
    def _facet(self, entity: type, key: str, facet: Any, path: str) -> Any:
        if not isinstance(facet, Mapping):
            raise SpecError(f"{path}: a facet must be an object")
        url = facet.get("_schemaURL")
        cls = self.classes.get(url)
        if cls is None:
            self._by_schema(key, facet, path)
            cls = entity  # and the base fields, through the client
        elif not issubclass(cls, entity):
            raise SpecError(f"{path}: {cls.__name__} is not a {entity.__name__}")
        else:
            self.seen[f"client:{cls.__name__}"] = self.seen.get(f"client:{cls.__name__}", 0) + 1
        built = self._build(cls, facet, path, core=False)
        if built._producer != facet.get("_producer"):
            raise SpecError(f"{path}._producer missing")
        return built

    def _by_schema(self, key: str, facet: Mapping[str, Any], path: str) -> None:
        url = str(facet.get("_schemaURL") or "")
        document_url, _, fragment = url.partition("#")
        if not fragment.startswith("/$defs/"):
            raise SpecError(f"{path}: _schemaURL {url!r} is no JSON pointer into a schema's $defs")
        if document_url not in self._documents:
            self._documents[document_url] = self.fetch_schema(document_url)
        document = self._documents[document_url]
        if document is None:
            raise SpecError(f"{path}: _schemaURL {url!r} does not resolve")
        name = fragment.rsplit("/", 1)[-1]
        validate_against(document, name, facet, path, base_uri=document_url)
        self.seen[f"schema:{name}"] = self.seen.get(f"schema:{name}", 0) + 1


def validate_against(document: dict[str, Any], name: str, facet: Mapping[str, Any], path: str,
                     base_uri: str) -> None:
    """Validate ``facet`` against ``document#/$defs/<name>`` (the spec's facet bases resolved offline)."""
    import jsonschema
    from referencing import Registry, Resource

    spec = Resource.from_contents(_spec_defs())
    own = Resource.from_contents({"$id": base_uri, **document})
    registry = Registry().with_resources([(SPEC, spec), (base_uri, own)])
    validator = jsonschema.Draft202012Validator({"$ref": f"{base_uri}#/$defs/{name}"}, registry=registry,
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(dict(facet)), key=lambda e: list(e.path))
    if errors:
        raise SpecError(f"{path}: {errors[0].message} (at {list(errors[0].path)}, schema {name})")
