"""The contract every edit backend fulfils, and the per-image inputs it may ask for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeGuard

from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.recipes import Recipe, RecipeStep
from airflow_image_catalog.storage import join_uri, normalize_uri, read_bytes

if TYPE_CHECKING:
    from airflow_image_catalog.backends.http import HttpTransport


class EditError(CatalogError, RuntimeError):
    """One image could not be edited; ``retryable`` says whether trying again may help.

    Provider errors also carry the provider's ``code`` (e.g. ``moderation_blocked``),
    the HTTP ``status``, how many ``attempts`` were made and, for throttling, the
    ``retry_after`` seconds the provider asked for. Messages never contain API keys.

    An asynchronous job that was submitted (and billed) and then died at the provider
    without a result (lost, errored, stuck, its result expired) sets ``job_lost``: replaying
    its submission would only return the same dead job, so the next try submits afresh.
    ``usage`` holds the usage records of calls billed before the failure (booked all the same);
    ``possibly_billed`` the attempts whose answer was lost after their body was sent
    (:class:`~airflow_image_catalog.backends.http.PaidScope`), booked as possibly billed.
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
        self.retryable, self.code, self.status, self.attempts = retryable, code, status, attempts
        self.retry_after, self.job_lost, self.usage = retry_after, job_lost, list(usage or [])
        self.possibly_billed: list[dict[str, Any]] = []


@dataclass
class EditResult:
    """An edited image and what it took: usage records (the ledger prices them), steps, HTTP attempts."""

    data: bytes
    format: str
    width: int
    height: int
    usage: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0  # HTTP attempts spent (0 for the local engine)
    rounds: list[dict[str, Any]] = field(default_factory=list)  # multi-round recipes: drift per round
    #: attempts whose answer was lost after their body was sent: the provider may have billed them too
    possibly_billed: list[dict[str, Any]] = field(default_factory=list)


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
        text = template.format(
            source_root=self.source_root.rstrip("/"), image_id=self.image_id, recipe_dir=self.recipe_dir
        )
        if "://" in text or text.startswith("/"):
            return normalize_uri(text)
        return join_uri(self.recipe_dir, text)

    def read(self, template: str) -> bytes:
        """Bytes of a mask or reference image; shared references are read once per chunk."""
        uri = self.resolve(template)
        if uri not in self.cache:
            self.cache[uri] = read_bytes(uri)
        return self.cache[uri]

    def references(self, step: RecipeStep) -> list[bytes]:
        return [self.read(ref) for ref in step.reference_images]


@dataclass(frozen=True)
class PromptLimit:
    """The longest prompt a provider accepts, counted as its documents count it (characters or UTF-8 bytes)."""

    longest: int
    unit: Literal["characters", "bytes"] = "characters"

    def measure(self, prompt: str) -> int:
        return len(prompt.encode()) if self.unit == "bytes" else len(prompt)


@dataclass(frozen=True)
class Capabilities:
    """What a backend class can do, declared once on the class; callers branch on it, never probe.

    Each flag that brings methods has a protocol below and a ``TypeGuard`` (:func:`is_async`,
    :func:`is_jobs`, :func:`is_batch`, :func:`bills_at_submit`), so a type checker follows the branch.

    :param paid: calls are billed: each is booked in the cost ledger, and uploads are prepared for the
        provider and decoded first, so nothing unreadable is paid for (False: the local engine).
    :param concurrent: ``aedit`` under the backend's HTTP transport and its limiter (:class:`AsyncEditBackend`).
    :param jobs: the provider's jobs can be submitted, polled, collected and cancelled (:class:`JobBackend`),
        so the operator can defer to the triggerer.
    :param batch: many jobs go in one submission and one poll (:class:`BatchBackend`, the OpenAI Batch API).
    :param jobs_only: no per-image edit is offered for the route: the job loop always runs.
    :param bills_at_submit: a job is charged when created, so one that dies is booked all the same
        (:class:`SubmitBilledBackend`).
    :param prompt_driven: the backend follows each step's prompt (a drift regeneration can merge prompts);
        False for the local engine, which runs each step's operation.
    :param job_timeout_s: how long the provider may legitimately take with a job (a batch's completion
        window); the operator's ``job_timeout`` is raised to it.
    :param prompt_limit: the longest prompt the provider takes (None: no stated limit); checked for the
        whole recipe before anything is sent (:func:`check_prompts`) and by ``check_config``.
    """

    paid: bool = True
    concurrent: bool = False
    jobs: bool = False
    batch: bool = False
    jobs_only: bool = False
    bills_at_submit: bool = False
    prompt_driven: bool = True
    job_timeout_s: float = 0.0
    prompt_limit: PromptLimit | None = None

    def __post_init__(self) -> None:
        if self.batch and not self.jobs:
            raise ValueError("a batch backend is a job backend: set jobs=True")
        if (self.jobs_only or self.bills_at_submit or self.job_timeout_s) and not self.jobs:
            raise ValueError("jobs_only, bills_at_submit and job_timeout_s describe jobs: set jobs=True")
        if self.jobs and not self.concurrent:
            raise ValueError("a job backend talks to its provider through a transport: set concurrent=True")


class EditBackend(Protocol):
    """Edits one source image through every step of a recipe.

    Every backend class sets ``capabilities`` (see :class:`Capabilities`) and may name, in
    ``IDENTITY_FIELDS``, the settings that change its output (they join the result cache key).

    Usage records are dicts a cost ledger can price: ``{"step", "provider", "model",
    "images", ...}`` plus ``input_tokens`` / ``input_image_tokens`` /
    ``input_text_tokens`` / ``output_tokens`` for token-priced providers, or
    ``credits`` for credit-priced ones.
    """

    name: str
    model: str
    capabilities: ClassVar[Capabilities]
    IDENTITY_FIELDS: ClassVar[tuple[str, ...]]

    def edit(self, source: bytes, recipe: Recipe, context: ImageContext) -> EditResult: ...


class AsyncEditBackend(EditBackend, Protocol):
    """A network backend: ``aedit`` means ``edit``; the chunk runner edits images concurrently under
    ``transport``'s limiter and closes the transport when the chunk is done."""

    transport: HttpTransport

    async def aedit(self, source: bytes, recipe: Recipe, context: ImageContext) -> EditResult: ...


def prompt_problem(step: RecipeStep, recipe_name: str | None, backend: EditBackend) -> str | None:
    """Why ``backend`` would refuse this step's prompt, naming the recipe, step and field; None if it fits."""
    limit = backend.capabilities.prompt_limit
    if limit is None or not step.prompt:
        return None
    length = limit.measure(step.prompt)
    if length <= limit.longest:
        return None
    where = f"recipe {recipe_name!r} step {step.id!r}" if recipe_name else f"step {step.id!r}"
    return f"{where} field 'prompt' has {length:,} {limit.unit}; {backend.name} accepts at most {limit.longest:,}"


def prompt_problems(recipe: Recipe, backend: EditBackend) -> list[str]:
    """Every step of ``recipe`` whose prompt ``backend`` would refuse (see :func:`prompt_problem`)."""
    return [problem for step in recipe.steps if (problem := prompt_problem(step, recipe.name, backend))]


def check_prompts(recipe: Recipe, backend: EditBackend) -> None:
    """Refuse, before any step is sent (and paid for), a recipe one of whose prompts the provider would refuse."""
    if problems := prompt_problems(recipe, backend):
        raise EditError("; ".join(problems), code="prompt_too_long")


def is_async(backend: EditBackend) -> TypeGuard[AsyncEditBackend]:
    return backend.capabilities.concurrent


def backend_identity(backend: EditBackend) -> dict[str, Any]:
    """What about a backend determines its output: provider, model and ``IDENTITY_FIELDS`` settings.

    Part of the result cache key; never includes credentials or endpoints.
    """
    settings = {name: getattr(backend, name) for name in backend.IDENTITY_FIELDS}
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


class JobBackend(AsyncEditBackend, Protocol):
    """An asynchronous provider: one job per recipe step, submitted, polled, then collected.

    ``jobs_in_flight`` is how many of the account's jobs the provider runs at once (BFL: 24 tasks, 6 for
    Kontext [max]); the jobs path submits no more than that and the rest as jobs end. None: no such limit.
    """

    jobs_in_flight: int | None

    async def asubmit(self, image: bytes, recipe: Recipe, step_index: int, context: ImageContext) -> dict: ...

    async def apoll(self, job: dict) -> JobStatus: ...

    async def acollect(self, job: dict, status: JobStatus) -> tuple[bytes, dict[str, Any]]: ...

    async def acancel(self, job: dict) -> bool: ...


class BatchBackend(JobBackend, Protocol):
    """Jobs that travel together: one submission for many images' steps, one poll per batch."""

    async def asubmit_many(self, entries: list[tuple[str, bytes, int, ImageContext]],
                           recipe: Recipe) -> dict[str, dict[str, Any]]: ...

    async def apoll_many(self, jobs: dict[str, dict]) -> dict[str, JobStatus]: ...


class SubmitBilledBackend(JobBackend, Protocol):
    """A provider that charges a job when it is created (BFL's credits)."""

    def submit_usage(self, job: dict[str, Any]) -> dict[str, Any]: ...


def is_jobs(backend: EditBackend) -> TypeGuard[JobBackend]:
    return backend.capabilities.jobs


def is_batch(backend: EditBackend) -> TypeGuard[BatchBackend]:
    return backend.capabilities.batch


def bills_at_submit(backend: EditBackend) -> TypeGuard[SubmitBilledBackend]:
    return backend.capabilities.bills_at_submit
