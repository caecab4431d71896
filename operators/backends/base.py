"""The contract every edit backend fulfils, and the per-image inputs it may ask for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from operators.recipes import Recipe, RecipeStep


class EditError(RuntimeError):
    """One image could not be edited; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


@dataclass
class EditResult:
    data: bytes
    format: str
    width: int
    height: int
    usage: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ImageContext:
    """Where one image's per-image inputs (masks, reference images) are found.

    Recipe templates may use ``{source_root}``, ``{image_id}`` and ``{recipe_dir}``;
    relative results are taken relative to the recipe's directory.
    """

    image_id: str
    source_root: str
    recipe_dir: str
    cache: dict[str, bytes] = field(default_factory=dict, repr=False)  # shared by a chunk

    def resolve(self, template: str) -> str:
        from operators.storage import join_uri, normalize_uri

        text = template.format(
            source_root=self.source_root.rstrip("/"), image_id=self.image_id, recipe_dir=self.recipe_dir
        )
        if "://" in text or text.startswith("/"):
            return normalize_uri(text)
        return join_uri(self.recipe_dir, text)

    def read(self, template: str) -> bytes:
        """Bytes of a mask or reference image; shared references are read once per chunk."""
        from operators.storage import read_bytes

        uri = self.resolve(template)
        if uri not in self.cache:
            self.cache[uri] = read_bytes(uri)
        return self.cache[uri]

    def references(self, step: RecipeStep) -> list[bytes]:
        return [self.read(ref) for ref in step.reference_images]


class EditBackend(Protocol):
    """Edits one source image through every step of a recipe."""

    name: str
    model: str

    def edit(self, source: bytes, recipe: Recipe, context: ImageContext) -> EditResult: ...
