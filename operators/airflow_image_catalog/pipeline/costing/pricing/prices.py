"""The price table: versioned YAML config, shipped as ``prices.yaml``, overridable by users.

Prices live in configuration, never in code paths (DESIGN.md "Tokens and prices"): providers
change them, and customers negotiate their own. A user file is layered over the shipped table
field by field, so it only lists what differs. Validation errors name the file and the field,
e.g. ``mine.yaml: providers.openai.models.gpt-image-2.image_out: must be a number >= 0``.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_image_catalog.config.documents import load_document
from airflow_image_catalog.exceptions import CatalogError

SHIPPED = {"default": Path(__file__).with_name("prices.yaml")}
BILLING = ("tokens", "credits", "image")
TOKEN_FIELDS = ("text_in", "text_in_cached", "image_in", "image_in_cached", "image_out")
PRICE_FIELDS = {"tokens": TOKEN_FIELDS, "credits": ("credits",), "image": ("per_image",)}
#: optional price fields: ``credits_per_extra_mp`` makes ``credits`` the price of the first megapixel
#: (BFL's FLUX.2: every further megapixel of output and of input images costs this much)
OPTIONAL_PRICE_FIELDS = {"tokens": (), "credits": ("credits_per_extra_mp",), "image": ()}
MEGAPIXEL = 1024 * 1024  # a 1024x1024 image is 1 MP; BFL counts whole megapixels, rounded up
ANY_MODEL = "*"
PER_TOKENS = 1_000_000  # token prices are USD per 1M tokens
_TOP = ("version", "currency", "as_of", "batch_discount", "providers")
_PROVIDER = ("billing", "credit_usd", "models", "source")
_MODEL_TEXT = ("source", "assumption")
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")  # a dated snapshot: gpt-image-2-2026-04-21


class PricingError(CatalogError, ValueError):
    """A price table is invalid, or a provider/model has no price; the message says which."""


@dataclass(frozen=True)
class ModelPrice:
    """One model's prices. Token prices are USD per 1M tokens; ``credits`` per image; ``per_image`` USD.

    :param provider: the usage records' ``provider`` (``openai``, ``bfl``, ``recraft``, ...).
    :param model: the table's name for the model (``*``: any model of the provider).
    :param credit_usd: USD per credit (credit-billed providers).
    :param assumption: set when the figure is not published by the provider in this form.
    """

    provider: str
    model: str
    billing: str
    text_in: float = 0.0
    text_in_cached: float = 0.0
    image_in: float = 0.0
    image_in_cached: float = 0.0
    image_out: float = 0.0
    credits: float = 0.0
    credits_per_extra_mp: float = 0.0
    credit_usd: float = 0.0
    per_image: float = 0.0
    aliases: tuple[str, ...] = ()
    source: str = ""
    assumption: str = ""

    @property
    def image_usd(self) -> float:
        """USD for one edited image (credit- and image-billed providers; 0 for token billing);
        per-megapixel prices: the smallest edit, one 1 MP input to a 1 MP output (BFL's "from" price)."""
        if self.billing == "credits":
            return self.megapixel_credits((1024, 1024), [(1024, 1024)]) * self.credit_usd if self.per_megapixel \
                else self.credits * self.credit_usd
        return self.per_image if self.billing == "image" else 0.0

    @property
    def per_megapixel(self) -> bool:
        return self.credits_per_extra_mp > 0

    def megapixel_credits(self, output: tuple[int, int], inputs: list[tuple[int, int]]) -> float:
        """Credits of one per-megapixel edit: the first megapixel of the output at ``credits``, every
        further megapixel of the output and every megapixel of each input image at the extra rate."""
        def mp(size: tuple[int, int]) -> int:
            return max(1, math.ceil(size[0] * size[1] / MEGAPIXEL))

        extra = mp(output) - 1 + sum(mp(size) for size in inputs)
        return self.credits + self.credits_per_extra_mp * extra


@dataclass(frozen=True)
class Prices:
    """A validated price table: look models up with :meth:`model`."""

    version: int
    currency: str
    as_of: str
    batch_discount: float
    models: dict[str, dict[str, ModelPrice]] = field(default_factory=dict)  # provider -> name -> price
    origin: str = ""

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self.models)

    def model(self, provider: str, model: str | None) -> ModelPrice:
        """The price of ``model`` at ``provider``: exact name, an alias, a dated snapshot of a known model
        (``gpt-image-2-2026-04-21`` -> ``gpt-image-2``), or the provider's ``*`` entry.

        The policy for new model names: a name that is none of these is refused, never priced as a
        model it resembles (``gpt-image-2.5-flare`` is not ``gpt-image-2``); add it to a price file.

        :raises PricingError: naming the known providers or models.
        """
        table = self.models.get(provider)
        if table is None:
            raise PricingError(f"{_label(self.origin)}: no prices for provider {provider!r} "
                               f"(known: {', '.join(self.providers)})")
        name = (model or "").strip()
        if name in table:
            return table[name]
        for price in table.values():
            if name in price.aliases:
                return price
        undated = _SNAPSHOT.sub("", name)
        if undated != name and undated in table:
            return table[undated]
        if ANY_MODEL in table:
            return table[ANY_MODEL]
        raise PricingError(f"{_label(self.origin)}: no price for {provider} model {model!r} "
                           f"(known: {', '.join(table)}); add it to a price file")


def _label(origin: str) -> str:
    return origin.rsplit("/", 1)[-1] or "<prices>"


def _fail(origin: str, where: str, message: str) -> None:
    raise PricingError(f"{_label(origin)}: {where}: {message}")


def _mapping(origin: str, where: str, data: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        _fail(origin, where, f"must be a mapping, got {type(data).__name__}")
    unknown = sorted(str(k) for k in set(data) - set(allowed))
    if unknown:
        _fail(origin, f"{where}.{unknown[0]}" if where != "<top>" else unknown[0],
              f"unknown field (allowed: {', '.join(allowed)})")
    return data


def _number(origin: str, where: str, value: Any, *, below: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != value:
        _fail(origin, where, f"must be a number >= 0, got {value!r}")
    if below is not None and value >= below:
        _fail(origin, where, f"must be below {below}, got {value!r}")
    return float(value)


def _parse_model(origin: str, provider: str, billing: str, credit_usd: float, name: str, data: Any) -> ModelPrice:
    where = f"providers.{provider}.models.{name}"
    fields = PRICE_FIELDS[billing]
    optional = OPTIONAL_PRICE_FIELDS[billing]
    data = _mapping(origin, where, data, (*fields, *optional, "aliases", *_MODEL_TEXT))
    missing = [f for f in fields if f not in data]
    if missing:
        _fail(origin, f"{where}.{missing[0]}", f"required for {billing} billing ({', '.join(fields)})")
    prices = {f: _number(origin, f"{where}.{f}", data[f]) for f in (*fields, *optional) if f in data}
    aliases = data.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        _fail(origin, f"{where}.aliases", "must be a list of model names")
    for text in _MODEL_TEXT:
        if text in data and not isinstance(data[text], str):
            _fail(origin, f"{where}.{text}", f"must be text, got {data[text]!r}")
    return ModelPrice(provider=provider, model=name, billing=billing, credit_usd=credit_usd, aliases=tuple(aliases),
                      source=data.get("source", ""), assumption=data.get("assumption", ""), **prices)


def parse_prices(data: Any, *, origin: str = "<prices>") -> Prices:
    """Validate a price document (the parsed YAML); errors name ``origin``'s file and the field."""
    data = _mapping(origin, "<top>", data, _TOP)
    if data.get("version") != 1:
        _fail(origin, "version", f"unsupported price table version {data.get('version')!r} (expected 1)")
    if data.get("currency") != "USD":
        _fail(origin, "currency", f"only USD is supported, got {data.get('currency')!r}")
    as_of = data.get("as_of")
    if not isinstance(as_of, dt.date | str) or not str(as_of):
        _fail(origin, "as_of", "required: the date the prices were taken (YYYY-MM-DD)")
    if "batch_discount" not in data:
        _fail(origin, "batch_discount", "required: the fraction the Batch API takes off (0.5 = 50%)")
    batch_discount = _number(origin, "batch_discount", data["batch_discount"], below=1)
    providers = data.get("providers")
    if not isinstance(providers, dict) or not providers:
        _fail(origin, "providers", "required: a mapping of provider -> billing and models")
    models: dict[str, dict[str, ModelPrice]] = {}
    for provider, entry in providers.items():
        where = f"providers.{provider}"
        entry = _mapping(origin, where, entry, _PROVIDER)
        billing = entry.get("billing")
        if billing not in BILLING:
            _fail(origin, f"{where}.billing", f"must be one of {', '.join(BILLING)}, got {billing!r}")
        credit_usd = 0.0
        if billing == "credits":
            if "credit_usd" not in entry:
                _fail(origin, f"{where}.credit_usd", "required for credits billing: USD per credit")
            credit_usd = _number(origin, f"{where}.credit_usd", entry["credit_usd"])
        table = entry.get("models")
        if not isinstance(table, dict) or not table:
            _fail(origin, f"{where}.models", "required: a mapping of model name -> prices")
        models[str(provider)] = {str(name): _parse_model(origin, str(provider), billing, credit_usd, str(name), m)
                                 for name, m in table.items()}
    return Prices(version=1, currency="USD", as_of=str(as_of), batch_discount=batch_discount, models=models,
                  origin=origin)


def _merge(base: Any, override: Any) -> Any:
    """``override`` layered over ``base``: mappings merge key by key, anything else replaces."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    return {**base, **{key: _merge(base.get(key), value) for key, value in override.items()}}


def _attributed(override: dict[str, Any], label: str) -> dict[str, Any]:
    """The override with every model whose prices it sets sourced to the override file (unless it
    names a source) and the shipped ``assumption`` dropped: the user's figure replaces it."""
    providers = override.get("providers")
    if not isinstance(providers, dict):
        return override
    attributed = {}
    for provider, entry in providers.items():
        models = entry.get("models") if isinstance(entry, dict) else None
        if isinstance(models, dict):
            entry = {**entry, "models": {
                name: {"source": f"override in {label}", "assumption": "", **model}
                if isinstance(model, dict) and set(model) & {f for fs in (*PRICE_FIELDS.values(),
                                                                         *OPTIONAL_PRICE_FIELDS.values()) for f in fs}
                else model for name, model in models.items()}}
        attributed[provider] = entry
    return {**override, "providers": attributed}


@functools.cache
def _shipped_document() -> tuple[Any, str]:
    return load_document("default", SHIPPED, kind="price table", error=PricingError)


@functools.cache
def _default() -> Prices:
    data, uri = _shipped_document()
    return parse_prices(data, origin=uri)


def load_prices(ref: str | None = None) -> Prices:
    """The shipped price table (``None`` or ``"default"``), or a user file by path or URI over it.

    :param ref: a path or URI (``file://``, ``s3://``) of a YAML/JSON price file whose entries
        replace the shipped ones field by field; it needs ``version: 1`` and may omit the rest.
    :raises PricingError: naming the file and the field when the result is invalid.
    """
    if ref is None or ref == "default":
        return _default()

    data, uri = load_document(ref, SHIPPED, kind="price table", error=PricingError)
    if not isinstance(data, dict):
        _fail(uri, "<top>", f"must be a mapping, got {type(data).__name__}")
    if data.get("version") != 1:
        _fail(uri, "version", f"unsupported price table version {data.get('version')!r} (expected 1)")
    base, _ = _shipped_document()
    return parse_prices(_merge(base, _attributed(data, _label(uri))), origin=uri)


def resolve_prices(prices: Prices | str | None) -> Prices:
    """A :class:`Prices` from a table, a reference for :func:`load_prices`, or ``None`` (shipped)."""
    return prices if isinstance(prices, Prices) else load_prices(prices)
