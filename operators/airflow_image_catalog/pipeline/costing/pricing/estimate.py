"""Cost estimates before any money is spent, and the cost of what was actually billed.

:func:`estimate_edit` prices one edit request, :func:`estimate_recipe` every step of a recipe for
one image (the cost check multiplies by the image count), and :func:`cost_of_usage` one usage
record a backend returned (what the cost ledger books and reconciles against the estimate).
Plain functions on sizes, text and a :class:`~airflow_image_catalog.pipeline.costing.pricing.prices.Prices` table: no I/O
beyond loading the table, no Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from airflow_image_catalog.backends.base import EditError
from airflow_image_catalog.pipeline.costing.pricing.prices import (
    ANY_MODEL,
    PER_TOKENS,
    ModelPrice,
    Prices,
    PricingError,
    resolve_prices,
)
from airflow_image_catalog.pipeline.costing.pricing.tokens import Tokens, parse_size, request_tokens

#: edit backend (``EditBackend.name``) -> the ``provider`` its usage records and the price table use
BACKEND_PROVIDERS = {"openai": "openai", "openai_batch": "openai", "bfl": "bfl", "firefly": "firefly",
                     "recraft": "recraft", "local": "local"}
USD_DIGITS = 9  # nano-dollars: sums of many requests stay exact enough, floats stay comparable


def _usd(value: float) -> float:
    return round(value, USD_DIGITS)


@dataclass(frozen=True)
class Estimate:
    """What an edit (or a recipe's steps for one image) is expected to cost, with a band.

    :param usd: the point estimate; ``low_usd`` / ``high_usd`` bound it where inputs are estimates.
    :param requests: paid requests; ``images``: images generated (and paid for) by them.
    :param tokens: the point estimate's token breakdown (token-billed providers), else ``None``.
    :param size: the request's output size as priced (``WxH``), where it matters.
    :param basis: what each figure rests on (documented, estimated, assumed), for the run report.
    :param steps: a recipe estimate's per-step estimates.
    """

    provider: str
    model: str
    usd: float
    low_usd: float
    high_usd: float
    requests: int = 1
    images: int = 1
    tokens: Tokens | None = None
    batch: bool = False
    size: str | None = None
    basis: tuple[str, ...] = ()
    steps: tuple[Estimate, ...] = ()

    def times(self, count: int) -> Estimate:
        """This estimate for ``count`` images (e.g. a chunk or a day's catalog)."""
        return replace(self, usd=_usd(self.usd * count), low_usd=_usd(self.low_usd * count),
                       high_usd=_usd(self.high_usd * count), requests=self.requests * count,
                       images=self.images * count, tokens=self.tokens.times(count) if self.tokens else None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (manifests, the ledger, XCom)."""
        return asdict(self)


def provider_for(backend: str) -> str:
    """The price table's provider for an edit backend name."""
    try:
        return BACKEND_PROVIDERS[backend]
    except KeyError:
        raise PricingError(f"no pricing for backend {backend!r} (known: {', '.join(BACKEND_PROVIDERS)})") from None


def token_usd(price: ModelPrice, tokens: Tokens) -> float:
    """USD for token counts at a model's per-1M-token prices (before any batch discount)."""
    return (tokens.image_in * price.image_in + tokens.image_in_cached * price.image_in_cached
            + tokens.text_in * price.text_in + tokens.text_in_cached * price.text_in_cached
            + tokens.image_out * price.image_out) / PER_TOKENS


def _price_basis(price: ModelPrice) -> tuple[str, ...]:
    notes = [f"price {price.provider}/{price.model}: {price.source or 'no source given'}"]
    if price.assumption:
        notes.append(f"assumption: {price.assumption}")
    return tuple(notes)


def auto_size(width: int, height: int) -> str:
    """What ``size=auto`` is priced as: the fixed size nearest the input's aspect ratio (assumption:
    the API picks the size; gpt-image-2 may pick another, which the band on its tokens covers)."""
    from airflow_image_catalog.backends.openai_images import nearest_size

    return nearest_size("gpt-image-1.5", width, height)  # a fixed-size model: the three standard sizes


def refuse_shut_down(provider: str, model: str | None) -> None:
    """A model its provider no longer serves is refused before it is priced (the backend's own list)."""
    if provider == "openai" and model:
        from airflow_image_catalog.backends.base import EditError
        from airflow_image_catalog.backends.openai_images import check_model

        try:
            check_model(model)
        except EditError as exc:
            raise PricingError(str(exc)) from None


def estimate_edit(
    backend: str,
    model: str | None,
    *,
    input_sizes: Sequence[tuple[int, int]],
    prompt: str = "",
    size: str | None = None,
    quality: str | None = "auto",
    n: int = 1,
    fidelity: str | None = None,
    batch: bool = False,
    partial_images: int = 0,
    prices: Prices | str | None = None,
) -> Estimate:
    """The cost of one edit request: one recipe step for one image.

    :param backend: the edit backend name (``openai``, ``openai_batch``, ``bfl``, ``firefly``,
        ``recraft``, ``local``); ``openai_batch`` implies ``batch``.
    :param model: the backend's model (snapshots and aliases resolve through the price table).
    :param input_sizes: (width, height) of the image being edited, then of each reference image,
        as uploaded (after any downscaling for the provider).
    :param size: the request's ``size``; ``None`` / ``auto`` is priced as :func:`auto_size`.
    :param quality: ``low`` / ``medium`` / ``high`` / ``auto`` (= medium).
    :param n: images asked for per request (each is paid for).
    :param fidelity: ``input_fidelity``; ``None`` is the API default (gpt-image-2 is always high).
    :param batch: billed through the Batch API (``batch_discount`` off).
    :param partial_images: streamed partial images per output (100 tokens each).
    :param prices: a price table, a price file reference, or ``None`` for the shipped table.
    """
    table = resolve_prices(prices)
    provider = provider_for(backend)
    refuse_shut_down(provider, model)
    price = table.model(provider, model)
    batch = batch or backend == "openai_batch"
    factor = 1 - table.batch_discount if batch else 1.0
    name = price.model if price.model != ANY_MODEL else (model or ANY_MODEL)
    notes = _price_basis(price) + ((f"Batch API: {table.batch_discount:.0%} off",) if batch else ())
    if price.billing != "tokens" and price.per_megapixel and input_sizes:
        output = parse_size(size) if size not in (None, "", "auto") else tuple(input_sizes[0])
        credits = price.megapixel_credits(output, [tuple(s) for s in input_sizes])
        usd = _usd(credits * price.credit_usd * n * factor)
        notes += (f"per megapixel: {price.credits:g} credits for the first MP of the output, "
                  f"{price.credits_per_extra_mp:g} for each further MP of the output and each MP of the "
                  f"{len(input_sizes)} input image(s) (whole MP of 1024x1024 px, rounded up); output priced "
                  f"at {output[0]}x{output[1]}" + (" (the input's size)" if size in (None, "", "auto") else ""),)
        return Estimate(provider, name, usd, usd, usd, images=n, batch=batch, size=size, basis=notes)
    if price.billing != "tokens":
        usd = _usd(price.image_usd * n * factor)
        return Estimate(provider, name, usd, usd, usd, images=n, batch=batch, size=size, basis=notes)
    if not input_sizes:
        raise PricingError("an edit request needs at least one input image size")
    wanted = auto_size(*input_sizes[0]) if size in (None, "", "auto") else size
    counted = request_tokens(name, input_sizes, prompt, wanted, quality, n=n, fidelity=fidelity,
                             partial_images=partial_images)
    if size in (None, "", "auto"):
        notes += (f"size auto: priced as {wanted} (nearest fixed size to the input)",)
    usd, low, high = (_usd(token_usd(price, t) * factor) for t in (counted.tokens, counted.low, counted.high))
    return Estimate(provider, name, usd, low, high, images=n, tokens=counted.tokens, batch=batch,
                    size="x".join(map(str, parse_size(wanted))), basis=counted.basis + notes)


def _step_sizes(recipe: Any, model: str, size: str | None) -> list[str]:
    """Each step's request size exactly as the OpenAI backend will send it (its own rules, reused)."""
    from airflow_image_catalog.backends.openai_images import OpenAIImagesBackend

    try:
        planner = OpenAIImagesBackend(None, model=model, size=size)  # type: ignore[arg-type]  # never sends
    except EditError as exc:
        raise PricingError(str(exc)) from None
    return [planner.step_setup(recipe, index)[2] for index in range(len(recipe.steps))]


def estimate_recipe(
    recipe: Any,
    backend: str,
    model: str | None,
    *,
    source_size: tuple[int, int],
    reference_sizes: Mapping[str, tuple[int, int]] | None = None,
    settings: Mapping[str, Any] | None = None,
    prices: Prices | str | None = None,
) -> Estimate:
    """The cost of running every step of ``recipe`` on one image; ``steps`` holds each step's estimate.

    Each step is one request whose inputs are the current image and the step's reference images;
    its output (the request size the backend sends: the step's or recipe's output size fitted to
    a valid size, the backend's ``size`` setting, else ``auto``) is the next step's input.

    :param recipe: an :class:`airflow_image_catalog.recipes.Recipe`.
    :param source_size: (width, height) of the source as uploaded.
    :param reference_sizes: sizes of reference images, keyed as written in the steps'
        ``reference_images``; a missing one is priced at the current image's size (noted).
    :param settings: the backend's options (the connection extras): ``size``, ``quality``,
        ``input_fidelity``, ``n``.
    """
    settings = dict(settings or {})
    reference_sizes = reference_sizes or {}
    table = resolve_prices(prices)
    refuse_shut_down(provider_for(backend), model)
    price = table.model(provider_for(backend), model)
    sizes = (_step_sizes(recipe, model or "", settings.get("size") or None) if price.billing == "tokens"
             else [None] * len(recipe.steps))
    current, steps = tuple(source_size), []
    for step, size in zip(recipe.steps, sizes, strict=True):
        missing = [ref for ref in step.reference_images if ref not in reference_sizes]
        inputs = [current, *(tuple(reference_sizes.get(ref, current)) for ref in step.reference_images)]
        estimate = estimate_edit(backend, model, input_sizes=inputs, prompt=step.prompt, size=size,
                                 quality=settings.get("quality", "auto"), n=int(settings.get("n") or 1),
                                 fidelity=settings.get("input_fidelity"), prices=table)
        notes = tuple(f"step {step.id}: reference {ref!r} size unknown, priced as the image's"
                      for ref in missing if estimate.tokens is not None)
        steps.append(replace(estimate, basis=estimate.basis + notes))
        current = parse_size(estimate.size) if estimate.size else current
    return sum_estimates(steps, recipe=recipe)


def sum_estimates(parts: Sequence[Estimate], *, recipe: Any = None) -> Estimate:
    """Several requests' estimates as one (a recipe's steps); notes deduplicated, parts kept in ``steps``."""
    if not parts:
        raise PricingError("nothing to sum: no estimates")
    first = parts[0]
    tokens = [p.tokens for p in parts if p.tokens is not None]
    basis = list(dict.fromkeys(note for part in parts for note in part.basis))
    drift = getattr(recipe, "drift", None)
    if drift is not None and drift.max_regenerations:
        basis.append(f"not included: up to {drift.max_regenerations} drift regeneration request(s) per image")
    return Estimate(
        provider=first.provider, model=first.model, usd=_usd(sum(p.usd for p in parts)),
        low_usd=_usd(sum(p.low_usd for p in parts)), high_usd=_usd(sum(p.high_usd for p in parts)),
        requests=sum(p.requests for p in parts), images=sum(p.images for p in parts),
        tokens=sum(tokens[1:], tokens[0]) if tokens else None, batch=first.batch, size=parts[-1].size,
        basis=tuple(basis), steps=tuple(parts))


def _count(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    return None if value is None else int(value)


def usage_tokens(record: Mapping[str, Any]) -> Tokens | None:
    """The token counts of an OpenAI usage record, ``None`` when the response carried no ``usage``.

    Input tokens without the image/text split are booked as image tokens (the dearer rate).
    """
    image, text, total_in, out = (_count(record, k) for k in
                                  ("input_image_tokens", "input_text_tokens", "input_tokens", "output_tokens"))
    if image is None and text is None and total_in is None and out is None:
        return None
    if image is None and text is None:
        image, text = total_in or 0, 0
    return Tokens(image_in=image or 0, text_in=text or 0, image_out=out or 0)


def cost_of_usage(record: Mapping[str, Any], prices: Prices | str | None = None, *,
                  cached: bool = False) -> float | None:
    """USD actually billed for one usage record as the backends write them; ``None`` if unknowable.

    * ``provider: openai`` - token counts at the model's prices, ``batch_discount`` off when
      ``batch`` is true; ``None`` when the response had no ``usage`` (book the estimate instead).
    * ``bfl`` / ``recraft`` - the ``credits`` the provider reported x the provider's ``credit_usd``;
      without them, ``images`` x the model's credits per image.
    * ``firefly`` - ``images`` x the price per image.
    * the local engine's records (no ``provider``, ``cost_usd: 0.0``) - the ``local`` price: 0.
    * ``cached`` (or a record marked ``cache_hit`` / ``cached``): 0 - a result-cache hit repeats
      an earlier run's usage records, but nothing was paid this time.

    :raises PricingError: for a provider or model the table has no price for.
    """
    if cached or record.get("cache_hit") or record.get("cached"):
        return 0.0
    table = resolve_prices(prices)
    provider = record.get("provider") or ("local" if "cost_usd" in record else None)
    if provider is None:
        raise PricingError(f"usage record has no provider: {dict(record)!r}")
    price = table.model(str(provider), record.get("model"))
    factor = 1 - table.batch_discount if record.get("batch") else 1.0
    if price.billing == "tokens":
        tokens = usage_tokens(record)
        return None if tokens is None else _usd(token_usd(price, tokens) * factor)
    credits = record.get("credits")
    if price.billing == "credits" and credits is not None:
        return _usd(float(credits) * price.credit_usd * factor)
    images = record.get("images")
    return _usd(price.image_usd * (1 if images is None else int(images)) * factor)
