"""The op registry: one validation path for recipes, ``apply_op`` and direct calls.

Every op is a pure function ``op(image, *, mask=None, references=(), **params)``
returning a new uint8 array. Images are RGB (H, W, 3) or, for a cut-out product, RGBA (H, W, 4)
with straight alpha: the alpha is then the product's mask, and each op says what it does with it
(colour ops keep it, background ops composite through it, fit_canvas resamples it premultiplied). ``engine_op`` records the op's parameter
specs; the function it returns validates every call, so a recipe checked with
``OpSpec.validate`` and a direct Python call can never disagree.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import OpParamError

_HEX_RE = re.compile(r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


class HexColor(str):
    """Marker type for ``ParamSpec``: a "#RRGGBB" (or "#RGB") colour string."""


_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    HexColor: "a hex colour",
}


@dataclass(frozen=True)
class ParamSpec:
    """Type, default and allowed values of one op parameter."""

    type: type
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None

    def check(self, op: str, name: str, value: Any) -> Any:
        """Return the normalised value or raise OpParamError naming ``name``."""
        t, raw = self.type, value
        if t is bool:
            if not isinstance(value, bool | np.bool_):
                raise OpParamError(name, f"{name} must be a boolean, got {value!r}", op=op, value=value)
            return bool(value)
        if t is int:
            if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
                raise OpParamError(name, f"{name} must be an integer, got {value!r}", op=op, value=value)
            value = int(value)
        elif t is float:
            if isinstance(value, bool | np.bool_) or not isinstance(
                value, int | float | np.integer | np.floating
            ):
                raise OpParamError(name, f"{name} must be a number, got {value!r}", op=op, value=value)
            value = float(value)
            if not np.isfinite(value):
                raise OpParamError(name, f"{name} must be a finite number, got {value!r}", op=op, value=value)
        elif t is HexColor:
            if not isinstance(value, str) or not _HEX_RE.match(value):
                raise OpParamError(
                    name, f"{name} must be a hex colour like '#RRGGBB', got {value!r}", op=op, value=value
                )
            value = HexColor(normalise_hex(value))
        elif t is str:
            if not isinstance(value, str):
                raise OpParamError(name, f"{name} must be a string, got {value!r}", op=op, value=value)
        if self.min is not None and self.max is not None and not self.min <= value <= self.max:
            raise OpParamError(
                name, f"{name} must be between {self.min:g} and {self.max:g}, got {raw!r}", op=op, value=raw
            )
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise OpParamError(name, f"{name} must be one of {allowed}, got {value!r}", op=op, value=value)
        return value

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description, for recipe docs and UIs."""
        out: dict[str, Any] = {
            "type": "hex" if self.type is HexColor else self.type.__name__,
            "default": self.default,
        }
        if self.min is not None:
            out["min"], out["max"] = self.min, self.max
        if self.choices is not None:
            out["choices"] = list(self.choices)
        return out


def normalise_hex(value: str) -> str:
    """'#abc' / '#aabbcc' -> '#AABBCC'."""
    digits = value[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return "#" + digits.upper()


def p_bool(default: bool) -> ParamSpec:
    return ParamSpec(bool, default)


def p_int(default: int, lo: int, hi: int) -> ParamSpec:
    return ParamSpec(int, default, lo, hi)


def p_float(default: float, lo: float, hi: float) -> ParamSpec:
    return ParamSpec(float, float(default), lo, hi)


def p_choice(default: str, *choices: str) -> ParamSpec:
    return ParamSpec(str, default, choices=tuple(choices))


def p_hex(default: str) -> ParamSpec:
    return ParamSpec(HexColor, HexColor(normalise_hex(default)))


def _check_image(op: str, name: str, image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4) or 0 in arr.shape:
        raise OpParamError(
            name,
            f"{name} must be an RGB or RGBA uint8 array of shape (H, W, 3|4), got {arr.dtype} {arr.shape}",
            op=op,
        )
    return arr


@dataclass(frozen=True)
class OpSpec:
    """A registered op: its function, parameter specs and input needs."""

    name: str
    func: Callable[..., np.ndarray]
    params: dict[str, ParamSpec] = field(default_factory=dict)
    needs_mask: bool = False
    needs_reference: bool = False
    doc: str = ""

    def validate(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Fill defaults and reject unknown names, wrong types and out-of-range values."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            known = ", ".join(sorted(self.params)) or "(none)"
            raise OpParamError(
                unknown[0], f"unknown parameter {unknown[0]!r}; known parameters: {known}", op=self.name
            )
        return {
            name: spec.check(self.name, name, params[name]) if name in params else spec.default
            for name, spec in self.params.items()
        }

    def __call__(
        self,
        image: np.ndarray,
        params: Mapping[str, Any] | None = None,
        *,
        mask: np.ndarray | None = None,
        references: Sequence[np.ndarray] = (),
    ) -> np.ndarray:
        """Validate everything, then run the op on read-only views of the inputs."""
        values = self.validate(params)
        img = _check_image(self.name, "image", image)
        if mask is not None:
            m = np.asarray(mask)
            if m.shape != img.shape[:2]:
                raise OpParamError(
                    "mask",
                    f"mask must have the image's shape {img.shape[:2]}, got {m.shape}",
                    op=self.name,
                )
            mask = m.astype(bool, copy=False)
        elif self.needs_mask:
            raise OpParamError(
                "mask", "mask is required (a boolean HxW array, True = edit here)", op=self.name
            )
        refs = tuple(_check_image(self.name, "references", r) for r in (references or ()))
        if self.needs_reference and not refs:
            raise OpParamError("references", "references must contain at least one image", op=self.name)
        out = self.func(
            _readonly(img), mask=_readonly(mask), references=tuple(map(_readonly, refs)), **values
        )
        if out is img or np.shares_memory(out, img):
            out = out.copy()
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "doc": self.doc,
            "needs_mask": self.needs_mask,
            "needs_reference": self.needs_reference,
            "params": {k: v.describe() for k, v in self.params.items()},
        }


def _readonly(arr: np.ndarray | None) -> np.ndarray | None:
    """A read-only view, so an op that tries to write into its input fails loudly in tests."""
    if arr is None:
        return None
    view = arr.view()
    view.flags.writeable = False
    return view


OPS: dict[str, OpSpec] = {}


def engine_op(
    name: str, /, *, needs_mask: bool = False, needs_reference: bool = False, **params: ParamSpec
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Register ``func`` under ``name``; the returned callable validates like ``apply_op``."""

    def decorator(func: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        doc = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        spec = OpSpec(name, func, dict(params), needs_mask, needs_reference, doc)
        OPS[name] = spec

        @functools.wraps(func)
        def wrapper(
            image: np.ndarray,
            *,
            mask: np.ndarray | None = None,
            references: Sequence[np.ndarray] = (),
            **kwargs: Any,
        ) -> np.ndarray:
            return spec(image, kwargs, mask=mask, references=references)

        wrapper.spec = spec  # type: ignore[attr-defined]
        return wrapper

    return decorator


def get_op(name: str) -> OpSpec:
    """Look up an op, listing the known ones when the name is wrong."""
    try:
        return OPS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(OPS))
        raise OpParamError("op", f"unknown op {name!r}; known ops: {known}") from None


def apply_op(
    name: str,
    image: np.ndarray,
    params: Mapping[str, Any] | None = None,
    *,
    mask: np.ndarray | None = None,
    references: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """Validate and run one registered op."""
    return get_op(name)(image, params, mask=mask, references=references)
