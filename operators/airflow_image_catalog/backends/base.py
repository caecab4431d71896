"""The contract every edit backend fulfils, and the per-image inputs it may ask for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_image_catalog.recipes import Recipe, RecipeStep


class EditError(RuntimeError):
    """One image could not be edited; ``retryable`` says whether trying again may help.

    Provider errors also carry the provider's ``code`` (e.g. ``moderation_blocked``),
    the HTTP ``status``, how many ``attempts`` were made and, for throttling, the
    ``retry_after`` seconds the provider asked for. Messages never contain API keys.

    An asynchronous job that was submitted (and billed) and then died at the provider
    without a result (lost, errored, stuck, its result expired) sets ``job_lost``: replaying
    its submission would only return the same dead job, so the next try submits afresh.
    ``usage`` holds the usage records of calls billed before the failure (booked all the same).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        code: str | None = None,
        status: int | None = None,
        attempts: int | None = None,
        retry_after: float | None = None,
        job_lost: bool = False,
        usage: list[dict[str, Any]] | None = None,
    ):
        super().__init__(message)
        self.job_lost = job_lost
        self.usage = list(usage or [])
        self.retryable = retryable
        self.code = code
        self.status = status
        self.attempts = attempts
        self.retry_after = retry_after


@dataclass
class EditResult:
    data: bytes
    format: str
    width: int
    height: int
    usage: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0  # HTTP attempts spent (0 for the local engine)
    rounds: list[dict[str, Any]] = field(default_factory=list)  # multi-round recipes: drift per round


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
    #: the source's size when the upload was downscaled: masks drawn for it are scaled to match
    source_size: tuple[int, int] | None = None

    def resolve(self, template: str) -> str:
        from airflow_image_catalog.storage import join_uri, normalize_uri

        text = template.format(
            source_root=self.source_root.rstrip("/"), image_id=self.image_id, recipe_dir=self.recipe_dir
        )
        if "://" in text or text.startswith("/"):
            return normalize_uri(text)
        return join_uri(self.recipe_dir, text)

    def read(self, template: str) -> bytes:
        """Bytes of a mask or reference image; shared references are read once per chunk."""
        from airflow_image_catalog.storage import read_bytes

        uri = self.resolve(template)
        if uri not in self.cache:
            self.cache[uri] = read_bytes(uri)
        return self.cache[uri]

    def references(self, step: RecipeStep) -> list[bytes]:
        return [self.read(ref) for ref in step.reference_images]


class EditBackend(Protocol):
    """Edits one source image through every step of a recipe.

    Network backends also offer ``async def aedit(...)`` with the same meaning; the
    chunk runner then edits a chunk's images concurrently under the backend's limiter.
    Backends of asynchronous providers (submit, poll, collect) additionally implement
    :class:`JobBackend`, which the deferrable operator and the trigger use.

    Usage records are dicts a cost ledger can price: ``{"step", "provider", "model",
    "images", ...}`` plus ``input_tokens`` / ``input_image_tokens`` /
    ``input_text_tokens`` / ``output_tokens`` for token-priced providers, or
    ``credits`` for credit-priced ones.
    """

    name: str
    model: str

    def edit(self, source: bytes, recipe: Recipe, context: ImageContext) -> EditResult: ...


def backend_identity(backend: Any) -> dict[str, Any]:
    """What about a backend determines its output: provider, model and ``IDENTITY_FIELDS`` settings.

    Part of the result cache key; never includes credentials or endpoints.
    """
    settings = {name: getattr(backend, name, None) for name in getattr(backend, "IDENTITY_FIELDS", ())}
    return {"backend": backend.name, "model": backend.model, **settings}


@dataclass
class JobStatus:
    """One poll of an asynchronous provider job.

    ``state`` is ``pending``, ``ready`` or ``failed``; ``result`` carries what
    :meth:`JobBackend.collect` needs (e.g. the short-lived sample URL); failures
    carry the provider's ``code``, ``message`` and whether they are ``retryable``.
    """

    state: str
    result: dict[str, Any] = field(default_factory=dict)
    code: str | None = None
    message: str | None = None
    retryable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "result": self.result, "code": self.code,
                "message": self.message, "retryable": self.retryable}


class JobBackend(Protocol):
    """An asynchronous provider: one job per recipe step, submitted, polled, then collected."""

    name: str
    model: str

    async def asubmit(self, image: bytes, recipe: Recipe, step_index: int, context: ImageContext) -> dict: ...

    async def apoll(self, job: dict) -> JobStatus: ...

    async def acollect(self, job: dict, status: JobStatus) -> tuple[bytes, dict[str, Any]]: ...

    async def acancel(self, job: dict) -> bool: ...
