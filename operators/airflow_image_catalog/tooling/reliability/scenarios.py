"""The fault matrix: one :class:`Scenario` per fault, with what its first run must end with.

Every scenario edits a few distinct small images with a one-step recipe through a network
backend pointed at the local edit service (and, for the S3 rows, workspace and source on the
local S3 server behind the fault proxy). Images go one at a time (``max_concurrency`` 1), so
which image meets which fault is deterministic and ``expect_first`` can be exact. Each
request is tried ``max_attempts`` (3) times with millisecond backoff.

After the first run the faults are cleared and the run is rerun until no image is
retryable; :mod:`airflow_image_catalog.tooling.reliability.invariants` checks every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EDIT = "/v1/images/edits"
BFL = "/v1/flux"


@dataclass(frozen=True)
class Scenario:
    """One row of the matrix.

    :param name: the table's row name.
    :param backend: ``openai``, ``bfl`` or ``openai_batch`` (the connection's ``backend`` extra).
    :param faults: the edit service's fault rules (:class:`~airflow_image_catalog.tooling.service.faults.Fault` fields).
    :param s3_faults: S3 proxy rules: ``(method, kind, options)`` with kind ``fail`` / ``slow_down`` /
        ``drop`` / ``truncate`` (:class:`~airflow_image_catalog.tooling.s3.S3FaultProxy`); implies ``storage="s3"``.
    :param images: distinct source images.
    :param deferrable: run the edit task deferrable (asynchronous backends).
    :param extras: connection extras on top of :data:`CONNECTION_EXTRAS` (e.g. a short ``timeout``).
    :param expect_first: exact status counts after the first run (None: not pinned).
    :param reason: regex the error of every failed image of the first run must match.
    :param first_run_fails: the first DAG run must fail (the edit task fails the chunk, e.g. 402).
    :param provider_idempotency: the service honours ``Idempotency-Key`` (False: it ignores it, as the real
        image APIs may, so a retry after a lost answer is paid twice and must be booked possibly billed).
    :param fast: run through the DAG in the fast set (``make test``, ``--fast``); every scenario runs at the
        chunk level there.
    """

    name: str
    backend: str = "openai"
    faults: tuple[dict[str, Any], ...] = ()
    s3_faults: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    images: int = 4
    deferrable: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    expect_first: dict[str, int] | None = None
    reason: str = ""
    first_run_fails: bool = False
    fast: bool = False
    provider_idempotency: bool = True

    @property
    def storage(self) -> str:
        return "s3" if self.s3_faults else "file"


#: every connection: fail fast, retry fast, one image at a time (deterministic fault placement)
CONNECTION_EXTRAS: dict[str, Any] = {"max_attempts": 3, "backoff_initial": 0.01, "backoff_max": 0.05,
                                     "backoff_jitter": 0.01, "max_concurrency": 1, "timeout": 5.0,
                                     "poll_interval": 0.05, "poll_timeout": 2.0}


def _status(status: int, count: int, path: str = EDIT, **extra: Any) -> dict[str, Any]:
    return {"kind": "status", "status": status, "count": count, "path": path, **extra}


ALL_EDITED = {"edited": 4}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("429 storm, retry-after-ms honoured", faults=(_status(429, 2, retry_after_ms=30),),
             expect_first=ALL_EDITED),
    Scenario("429 storm, retry-after (seconds)", faults=(_status(429, 2, retry_after="0"),), expect_first=ALL_EDITED),
    Scenario("429 storm, no retry-after, outlasting retries", faults=(_status(429, -1),),
             expect_first={"failed_retryable": 4}, reason=r"HTTP 429 rate_limit_exceeded"),
    Scenario("500 burst", faults=(_status(500, 2),), expect_first=ALL_EDITED),
    Scenario("503 burst past the retries", faults=(_status(503, 4),),
             expect_first={"edited": 3, "failed_retryable": 1}, reason=r"HTTP 503"),
    Scenario("connection dropped before the answer", faults=({"kind": "drop", "count": 2, "path": EDIT},),
             expect_first=ALL_EDITED),
    Scenario("connection dropped mid-body after the edit",
             faults=({"kind": "drop_after", "count": 2, "path": EDIT},), expect_first=ALL_EDITED),
    Scenario("dropped mid-body after the edit, keys ignored (as real APIs may)",
             faults=({"kind": "drop_after", "count": 2, "path": EDIT},), expect_first=ALL_EDITED,
             provider_idempotency=False),
    Scenario("slow responses under the timeout", faults=({"kind": "latency", "seconds": 0.3, "count": -1,
                                                          "path": EDIT},), expect_first=ALL_EDITED),
    Scenario("hung response past the timeout", faults=({"kind": "hang", "seconds": 3, "count": 1, "path": EDIT},),
             extras={"timeout": 1.0}, expect_first=ALL_EDITED),
    Scenario("hung on every try", faults=({"kind": "hang", "seconds": 3, "count": 3, "path": EDIT},),
             extras={"timeout": 0.5}, expect_first={"edited": 3, "failed_retryable": 1}, reason=r"timed out"),
    Scenario("malformed JSON", faults=({"kind": "malformed_json", "count": 2, "path": EDIT},),
             expect_first=ALL_EDITED),
    Scenario("invalid base64 image", faults=({"kind": "bad_base64", "count": 1, "path": EDIT},),
             expect_first={"edited": 3, "failed_retryable": 1}, reason=r"no valid base64"),
    Scenario("response image is not an image", faults=({"kind": "not_image", "count": 1, "path": EDIT},),
             expect_first={"edited": 3, "failed_retryable": 1}, reason=r"not a readable image"),
    Scenario("moderation rejection", faults=({"kind": "moderation", "count": 1, "path": EDIT},),
             expect_first={"edited": 3, "failed_final": 1}, reason=r"moderation_blocked"),
    Scenario("402 out of credits", faults=(_status(402, -1),), expect_first={"failed_retryable": 4},
             reason=r"HTTP 402 insufficient_credits", first_run_fails=True, fast=True),
    Scenario("429 quota exhausted (insufficient_quota)", faults=(_status(429, -1, code="insufficient_quota"),),
             expect_first={"failed_retryable": 4}, reason=r"HTTP 429 insufficient_credits: \(insufficient_quota\)",
             first_run_fails=True),
    Scenario("BFL stuck Pending", backend="bfl", faults=({"kind": "bfl_pending", "count": 1, "path": BFL},),
             expect_first={"edited": 3, "failed_retryable": 1}, reason=r"still pending"),
    Scenario("BFL Task not found", backend="bfl", faults=({"kind": "bfl_not_found", "count": 1, "path": BFL},),
             expect_first={"edited": 3, "failed_retryable": 1}, reason=r"Task not found"),
    Scenario("BFL Content Moderated", backend="bfl",
             faults=({"kind": "content_moderated", "count": 1, "path": BFL},),
             expect_first={"edited": 3, "failed_final": 1}, reason=r"Content Moderated"),
    Scenario("BFL expired sample URL", backend="bfl", faults=({"kind": "bfl_expired", "count": 1, "path": BFL},),
             expect_first={"edited": 3, "failed_retryable": 1}, reason=r"expired before download"),
    Scenario("BFL deferrable: Task not found + Content Moderated", backend="bfl", deferrable=True,
             faults=({"kind": "bfl_not_found", "count": 1, "path": BFL},
                     {"kind": "content_moderated", "count": 1, "path": BFL}),
             expect_first={"edited": 2, "failed_retryable": 1, "failed_final": 1}),
    Scenario("BFL deferrable: submit answer dropped, keys ignored", backend="bfl", deferrable=True,
             faults=({"kind": "drop_after", "count": 1, "path": BFL},), expect_first=ALL_EDITED,
             provider_idempotency=False),
    Scenario("BFL 402 out of credits", backend="bfl", faults=(_status(402, -1, BFL),),
             expect_first={"failed_retryable": 4}, reason=r"402", first_run_fails=True),
    Scenario("S3 5xx on put/get/list", s3_faults=(("PUT", "fail", {"times": 2}), ("GET", "fail", {"times": 2}),
                                                 ("LIST", "fail", {"times": 1})), expect_first=ALL_EDITED,
             fast=True),
    Scenario("S3 throttling (SlowDown) on put/get/list",
             s3_faults=(("PUT", "slow_down", {"times": 1}), ("GET", "slow_down", {"times": 1}),
                        ("LIST", "slow_down", {"times": 1})), expect_first=ALL_EDITED),
    Scenario("S3 dropped and truncated responses", s3_faults=(("GET", "drop", {"times": 1}),
                                                             ("GET", "truncate", {"times": 1})),
             expect_first=ALL_EDITED),
)


#: the DAG runs the secrets scan searches after (an OpenAI and a deferrable BFL run: every kind of state)
SCAN_SCENARIOS = ("connection dropped mid-body after the edit", "BFL deferrable: Task not found + Content Moderated")


def by_name(name: str) -> Scenario:
    return next(s for s in SCENARIOS if s.name == name)


def fast_scenarios() -> tuple[Scenario, ...]:
    return tuple(s for s in SCENARIOS if s.fast)
