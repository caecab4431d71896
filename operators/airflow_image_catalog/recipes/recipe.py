"""The recipe format: parsing, validation and loading of named, ordered edit steps.

A recipe is a YAML (or JSON) file. Each step carries the natural-language
``prompt`` a generative backend receives and the local engine's operation for
the same intent, plus an optional mask, reference images and output settings.
Validation errors name the file and the exact field, e.g.
``marketplace.yaml: steps[1].local.params.fill: unknown parameter``.
See README.md ("Recipe format") for the full reference.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from airflow_image_catalog.config.documents import load_document
from airflow_image_catalog.exceptions import CatalogError

SHIPPED_DIR = Path(__file__).parent  # the shipped recipes sit beside this module
OUTPUT_FORMATS = ("jpeg", "png", "webp")
#: output formats that carry an alpha channel
ALPHA_OUTPUT_FORMATS = ("png", "webp")
#: auto: a transparent source stays transparent where the format can carry it, else it is flattened on
#: white; transparent: always a cut-out (photos are segmented); opaque: always flattened on white
BACKGROUNDS = ("auto", "transparent", "opaque")
#: local ops that paint an opaque backdrop behind the product (a transparent output would discard it)
BACKDROP_OPS = ("white_background", "replace_background")
AUTO_MASKS = ("subject", "background")
INTENTS = ("reframe", "masked", "region", "global")
TEMPLATE_FIELDS = ("source_root", "image_id", "recipe_dir")
MAX_PROMPT_CHARS = 32_000
MAX_REFERENCES = 15  # OpenAI takes 16 input images: the source plus 15 references
_STEP_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")


class RecipeError(CatalogError, ValueError):
    """A recipe file is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class OutputSpec:
    format: str = "jpeg"
    quality: int = 92
    size: str | None = None  # "WxH"; None keeps the edited image's size
    background: str = "auto"  # one of BACKGROUNDS

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else self.format

    @property
    def keeps_alpha(self) -> bool:
        """Whether a transparent result stays transparent (else it is flattened on white)."""
        return self.background != "opaque" and self.format in ALPHA_OUTPUT_FORMATS


@dataclass(frozen=True)
class LocalOperation:
    op: str
    params: dict[str, Any]


@dataclass(frozen=True)
class RecipeStep:
    id: str
    prompt: str
    local: LocalOperation
    mask: str | None = None
    reference_images: tuple[str, ...] = ()
    output: OutputSpec | None = None


@dataclass(frozen=True)
class QualitySpec:
    """How the quality gate judges this recipe's edits (see README "Quality gate")."""

    profile: str = "preserve"
    intent: str | None = None  # reframe | masked | region | global; None = inferred from the steps


@dataclass(frozen=True)
class DriftControl:
    """Multi-round recipes: how far the product may drift from the source before the chain restarts.

    After each round the product region of the result is compared with the source's
    (perceptual-hash distance, SSIM); past either limit the chain is regenerated from
    the source with every instruction so far in one request, at most
    ``max_regenerations`` times per image, instead of compounding the error.
    """

    max_phash_distance: int = 12
    min_product_ssim: float = 0.75
    max_regenerations: int = 1

    def exceeded(self, figures: dict[str, Any]) -> bool:
        return (figures["phash_distance"] > self.max_phash_distance
                or figures["product_ssim"] < self.min_product_ssim)


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    steps: tuple[RecipeStep, ...]
    output: OutputSpec
    quality: QualitySpec = QualitySpec()
    drift: DriftControl | None = None
    rights: str | None = None  # the rights policy (a shipped name or a file): pipeline/rights/policy.py
    origin: str = ""
    version: int = 1
    fingerprint: str = field(default="", compare=False)

    @property
    def recipe_dir(self) -> str:
        return self.origin.rsplit("/", 1)[0] if "/" in self.origin else ""

    def step_output(self, step: RecipeStep) -> OutputSpec:
        return step.output or self.output

    def round(self, index: int) -> Recipe:
        """Step ``index`` alone, as a one-step recipe; rounds before the last are kept lossless (PNG, with
        any transparency)."""
        step = self.steps[index]
        if index < len(self.steps) - 1:
            size = step.output.size if step.output else None
            # a cut-out stays one between rounds (flattening it early would grade the white too)
            final = self.step_output(self.steps[-1]).background
            background = "transparent" if final == "transparent" else "auto"
            step = replace(step, output=OutputSpec(format="png", size=size, background=background))
        return replace(self, steps=(step,), drift=None)

    def regeneration(self, upto: int, *, prompt_driven: bool) -> Recipe:
        """Steps ``0..upto`` redone from the source in one request.

        A prompt-driven backend gets one step whose prompt lists every instruction so far
        (masks kept when the steps share one, references merged); the local engine, which
        runs operations rather than prompts, gets the steps themselves in one call.
        """
        steps = self.steps[: upto + 1]
        last = self.round(upto).steps[0]
        if not prompt_driven or len(steps) == 1:
            return replace(self, steps=(*steps[:-1], last), drift=None)
        masks = {step.mask for step in steps}
        references = tuple(dict.fromkeys(ref for step in steps for ref in step.reference_images))[:MAX_REFERENCES]
        prompt = "Starting from the original image, apply all of these edits in one pass:\n" + "\n".join(
            f"{number}. {step.prompt}" for number, step in enumerate(steps, 1))
        merged = replace(last, id=f"regenerate-{last.id}"[:64], prompt=prompt[:MAX_PROMPT_CHARS],
                         mask=masks.pop() if len(masks) == 1 else None, reference_images=references)
        return replace(self, steps=(merged,), drift=None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("fingerprint")
        return data


class _Fields:
    """Walks a mapping while tracking the field path for error messages."""

    def __init__(self, origin: str, path: str, data: Any, allowed: tuple[str, ...], required: tuple[str, ...]):
        self.origin, self.path = origin, path
        if not isinstance(data, dict):
            self.fail(f"must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            self.fail(f"unknown field {unknown[0]!r} (allowed: {', '.join(allowed)})")
        for name in required:
            if name not in data:
                self.fail(f"missing required field {name!r}")
        self.data = data

    def where(self, name: str | None = None) -> str:
        return f"{self.path}.{name}" if self.path and name else (name or self.path or "<top>")

    def fail(self, message: str, name: str | None = None) -> None:
        raise RecipeError(f"{self.origin}: {self.where(name)}: {message}")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if name not in self.data or self.data[name] is None:
            return default
        value = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            self.fail(f"must be {names}, got {type(value).__name__} {value!r}", name)
        return value


def _parse_output(origin: str, path: str, data: Any, base: OutputSpec | None) -> OutputSpec:
    fields = _Fields(origin, path, data, ("format", "quality", "size", "background"), ())
    base = base or OutputSpec()
    fmt = str(fields.get("format", str, base.format)).lower()
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in OUTPUT_FORMATS:
        fields.fail(f"must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}", "format")
    quality = fields.get("quality", int, base.quality)
    if not 1 <= quality <= 100:
        fields.fail(f"must be between 1 and 100, got {quality}", "quality")
    size = fields.get("size", str, base.size)
    if size is not None:
        match = _SIZE.match(size)
        if not match or not all(16 <= int(v) <= 10_000 for v in match.groups()):
            fields.fail(f"must look like '2000x2000' with sides 16..10000, got {size!r}", "size")
    background = fields.get("background", str, base.background)
    if background not in BACKGROUNDS:
        fields.fail(f"must be one of {', '.join(BACKGROUNDS)}, got {background!r}", "background")
    if background == "transparent" and fmt not in ALPHA_OUTPUT_FORMATS:
        fields.fail(f"transparent needs a format that carries alpha ({' or '.join(ALPHA_OUTPUT_FORMATS)}), "
                    f"got format {fmt}", "background")
    return OutputSpec(format=fmt, quality=quality, size=size, background=background)


def _check_backdrops(origin: str, steps: tuple[RecipeStep, ...], output: OutputSpec) -> None:
    """A transparent result cannot keep a backdrop a step painted: say which step, not a silent loss."""
    final = steps[-1].output or output
    if final.background != "transparent":
        return
    for index, step in enumerate(steps):
        if step.local.op in BACKDROP_OPS:
            where = "output.background" if steps[-1].output is None else f"steps[{len(steps) - 1}].output.background"
            raise RecipeError(
                f"{origin}: steps[{index}].local.op: {step.local.op} paints an opaque backdrop, which {where}: "
                f"transparent would discard; drop the step (a transparent result needs none) or set background "
                f"to auto or opaque")


def _parse_quality(origin: str, data: Any) -> QualitySpec:
    fields = _Fields(origin, "quality", data, ("profile", "intent"), ())
    intent = fields.get("intent", str)
    if intent is not None and intent not in INTENTS:
        fields.fail(f"must be one of {', '.join(INTENTS)}, got {intent!r}", "intent")
    return QualitySpec(profile=fields.get("profile", str, QualitySpec.profile), intent=intent)


def _parse_drift(origin: str, data: Any) -> DriftControl:
    fields = _Fields(origin, "drift", data, ("max_phash_distance", "min_product_ssim", "max_regenerations"), ())
    default = DriftControl()
    distance = fields.get("max_phash_distance", int, default.max_phash_distance)
    if not 0 <= distance <= 64:
        fields.fail(f"must be between 0 and 64 (bits of a 64-bit hash), got {distance}", "max_phash_distance")
    ssim = float(fields.get("min_product_ssim", (int, float), default.min_product_ssim))
    if not 0 <= ssim <= 1:
        fields.fail(f"must be between 0 and 1, got {ssim}", "min_product_ssim")
    regenerations = fields.get("max_regenerations", int, default.max_regenerations)
    if not 0 <= regenerations <= 5:
        fields.fail(f"must be between 0 and 5, got {regenerations}", "max_regenerations")
    return DriftControl(distance, ssim, regenerations)


def _check_template(fields: _Fields, name: str, value: str) -> str:
    try:
        placeholders = {item[1] for item in string.Formatter().parse(value) if item[1] is not None}
    except ValueError as exc:
        fields.fail(f"bad template {value!r}: {exc}", name)
    unknown = sorted(placeholders - set(TEMPLATE_FIELDS))
    if unknown:
        fields.fail(f"unknown placeholder {{{unknown[0]}}} (allowed: {', '.join(TEMPLATE_FIELDS)})", name)
    return value


def _parse_local(origin: str, path: str, data: Any) -> LocalOperation:
    from airflow_image_catalog.imaging.engine import OpParamError, get_op

    fields = _Fields(origin, path, data, ("op", "params"), ("op",))
    op_name = fields.get("op", str)
    params = fields.get("params", dict, {})
    try:
        spec = get_op(op_name)
    except OpParamError as exc:
        fields.fail(str(exc), "op")
    try:
        validated = spec.validate(params)
    except OpParamError as exc:
        where = f"params.{exc.field}" if getattr(exc, "field", None) else "params"
        fields.fail(str(exc), where)
    return LocalOperation(op=op_name, params=validated)


def _parse_step(origin: str, index: int, data: Any, seen: set[str]) -> RecipeStep:
    from airflow_image_catalog.imaging.engine import get_op

    fields = _Fields(
        origin,
        f"steps[{index}]",
        data,
        ("id", "prompt", "local", "mask", "reference_images", "output"),
        ("id", "prompt", "local"),
    )
    step_id = fields.get("id", str)
    if not _STEP_ID.match(step_id):
        fields.fail(f"must match {_STEP_ID.pattern}, got {step_id!r}", "id")
    if step_id in seen:
        fields.fail(f"duplicate step id {step_id!r}", "id")
    seen.add(step_id)
    prompt = fields.get("prompt", str).strip()
    if not prompt or len(prompt) > MAX_PROMPT_CHARS:
        fields.fail(f"must be 1..{MAX_PROMPT_CHARS} characters, got {len(prompt)}", "prompt")
    local = _parse_local(origin, fields.where("local"), data["local"])
    mask = fields.get("mask", str)
    if mask is not None and mask not in AUTO_MASKS:
        _check_template(fields, "mask", mask)
    references = fields.get("reference_images", list, [])
    if len(references) > MAX_REFERENCES:
        fields.fail(f"at most {MAX_REFERENCES} reference images, got {len(references)}", "reference_images")
    for position, ref in enumerate(references):
        if not isinstance(ref, str) or not ref:
            fields.fail(f"must be a path or URI string, got {ref!r}", f"reference_images[{position}]")
        _check_template(fields, f"reference_images[{position}]", ref)
    spec = get_op(local.op)
    if spec.needs_mask and mask is None:
        fields.fail(f"local op {local.op!r} edits a masked region: set 'mask'", "mask")
    if spec.needs_reference and not references:
        fields.fail(f"local op {local.op!r} needs a reference image: set 'reference_images'", "reference_images")
    output = data.get("output")
    return RecipeStep(
        id=step_id,
        prompt=prompt,
        local=local,
        mask=mask,
        reference_images=tuple(references),
        output=None if output is None else _parse_output(origin, fields.where("output"), output, None),
    )


def parse_recipe(data: Any, *, origin: str = "<recipe>") -> Recipe:
    """Validate a loaded recipe document and build a :class:`Recipe`."""
    label = origin.rsplit("/", 1)[-1]
    fields = _Fields(
        label, "", data, ("version", "name", "description", "output", "steps", "quality", "drift", "rights"),
        ("name", "steps")
    )
    version = fields.get("version", int, 1)
    if version != 1:
        fields.fail(f"unsupported recipe version {version} (this release reads version 1)", "version")
    name = fields.get("name", str)
    if not _STEP_ID.match(name):
        fields.fail(f"must match {_STEP_ID.pattern}, got {name!r}", "name")
    steps_data = fields.get("steps", list)
    if not steps_data:
        fields.fail("needs at least one step", "steps")
    output = _parse_output(label, "output", data.get("output") or {}, None)
    seen: set[str] = set()
    steps = tuple(_parse_step(label, i, step, seen) for i, step in enumerate(steps_data))
    _check_backdrops(label, steps, output)
    recipe = Recipe(
        name=name,
        description=str(fields.get("description", str, "")).strip(),
        steps=steps,
        output=output,
        quality=_parse_quality(label, data.get("quality") or {}),
        drift=None if data.get("drift") is None else _parse_drift(label, data["drift"]),
        rights=fields.get("rights", str),
        origin=origin,
        version=version,
    )
    # identity of the edit itself: where the file lives, how it is judged and whose rights it checks do not
    # change outputs
    edit_fields = {k: v for k, v in recipe.to_dict().items() if k not in ("origin", "quality", "rights")}
    canonical = json.dumps(edit_fields, sort_keys=True)
    return replace(recipe, fingerprint=hashlib.sha256(canonical.encode()).hexdigest())


def shipped_recipes() -> dict[str, Path]:
    return {path.stem: path for path in sorted(SHIPPED_DIR.glob("*.yaml"))}


def portable_ref(recipe: Recipe) -> str:
    """What a later task (on another worker, or after an upgrade moved the package) loads ``recipe`` by:
    a shipped recipe's name, resolved in that worker's own installed package, else its URI."""
    shipped = shipped_recipes().get(recipe.name)
    return recipe.name if shipped is not None and shipped.as_uri() == recipe.origin else recipe.origin


def manifest_entry(recipe: Recipe) -> dict[str, str]:
    """How manifests (discovery, edits) and reports name the recipe a run applied: ``ref`` loads it on
    any worker, ``origin`` (where this one read it) is for people."""
    return {"name": recipe.name, "fingerprint": recipe.fingerprint, "origin": recipe.origin,
            "ref": portable_ref(recipe)}


def load_recipe(ref: str) -> Recipe:
    """Load a shipped recipe by name, or a recipe file by path or URI."""
    data, uri = load_document(ref, shipped_recipes(), kind="recipe", error=RecipeError)
    return parse_recipe(data, origin=uri)
