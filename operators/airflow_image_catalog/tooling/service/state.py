"""What the local edit service remembers: requests served, the paid work performed, jobs, files,
batches, the rate window and idempotency keys. Tests and ``GET /_service/stats`` read it."""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from airflow_image_catalog.tooling.service.faults import OUTPUT_KINDS, FaultPlan

SAMPLE_TTL_S = 600.0
#: providers keep idempotency keys for 24 h
IDEMPOTENCY_TTL_S = 24 * 3600.0
#: stored answers carry base64 images: keep at most this many (least recently used go first)
IDEMPOTENCY_MAX_ENTRIES = 256
#: the period of the advertised limit (``requests_per_minute``)
RATE_WINDOW_S = 60.0
#: OpenAI enforces a per-minute limit over shorter periods too ("60,000 requests/minute may be enforced as
#: 1,000 requests/second", help.openai.com article 6891753, quoted at community.openai.com/t/611241): a burst
#: is refused though the minute has room. The local service holds at most this many seconds' share at once.
RATE_QUANTUM_S = 1.0


@dataclass
class Job:
    id: str
    model: str
    fate: str | None
    prompt: str
    output_format: str
    done: bool = False
    data: bytes | None = None
    error: str | None = None
    ready_at: float | None = None
    cancelled: bool = False
    drift: bool = False
    #: input images read (the image and its references): BFL jobs
    inputs: int = 1


@dataclass
class Captured:
    """A complete response, as an idempotency key replays it."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class Claim:
    """One idempotency key: in flight until ``done`` is set, then ``response`` (None = not stored)."""

    done: asyncio.Event = field(default_factory=asyncio.Event)
    response: Captured | None = None
    expires_at: float = math.inf


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@dataclass
class ServiceState:
    """Everything the service remembers; tests and ``/_service/stats`` read it.

    Configuration (``api_key`` .. ``idempotency_max_entries``) survives :meth:`reset`
    unless asked: a service started with ``--latency 2`` stays slow across bench runs.
    """

    api_key: str | None = None
    requests_per_minute: int = 600
    sample_ttl_s: float = SAMPLE_TTL_S
    #: seconds added to every edit (edit routes and batch lines), as if the model took that long
    latency_s: float = 0.0
    #: answer 429 beyond what the rate bucket holds (see :meth:`admit`)
    enforce_rate_limit: bool = False
    #: seconds' share of ``requests_per_minute`` the bucket holds (:data:`RATE_QUANTUM_S`; 60 = the whole minute)
    rate_quantum_s: float = RATE_QUANTUM_S
    idempotency_ttl_s: float = IDEMPOTENCY_TTL_S
    idempotency_max_entries: int = IDEMPOTENCY_MAX_ENTRIES
    #: False: ``Idempotency-Key`` is ignored, as by the real image APIs (none documents it for edits)
    honour_idempotency: bool = True
    #: BFL tasks in flight admitted per limit group (None: BFL's own, 24, and 6 for Kontext [max])
    bfl_max_tasks: int | None = None
    #: seconds a BFL task runs after its submit was answered (real ones take several)
    bfl_task_seconds: float = 0.0
    faults: FaultPlan = field(default_factory=FaultPlan)
    served: Counter = field(default_factory=Counter)
    #: the paid work done: one small dict per edit performed, see :meth:`record`
    performed: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # OpenAI Files: metadata + "content"
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)  # OpenAI Batch objects
    log: deque = field(default_factory=lambda: deque(maxlen=200))  # request shapes, never key values
    #: edit requests admitted and not yet replenished (drains at ``requests_per_minute / 60`` a second), and when
    _rate_debt: float = 0.0
    _rate_at: float = 0.0
    _claims: OrderedDict = field(default_factory=OrderedDict)  # (path, key) -> Claim, LRU order
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> None:
        """A request served (``key`` is ``"METHOD /path"``): counts toward ``total``."""
        with self._lock:
            self.served[key] += 1
            self.served["total"] += 1

    def note(self, outcome: str) -> None:
        """How a counted request ended (``replayed``, ``abandoned``, ``rate_limited``): not a request."""
        with self._lock:
            self.served[outcome] += 1

    def requests(self, key: str = "total") -> int:
        return self.served[key]

    # -- rate bucket: edit requests only, so the headers tell the truth about enforcement
    #
    # The limit replenishes continuously, as OpenAI's headers describe it (developers.openai.com/api/docs/guides/
    # rate-limits: ``x-ratelimit-reset-requests`` is "the time until the rate limit ... resets to its initial
    # state"; their sample, 59 of 60 remaining, resets in 1s). The minute's figure is what the headers report;
    # enforcement is quantized: the bucket holds one quantum's share (``rate_quantum_s``; 10 at 600/min), so a
    # burst beyond it is refused even with the minute's ``remaining`` far from 0. OpenAI does not publish its
    # exact algorithm: this is the usual token bucket (GCRA) reading of "enforced as N requests/second".

    def _rate(self, now: float) -> tuple[dict[str, str], float]:
        """Headers and seconds until a request would be admitted (0 = now); call with the lock held."""
        limit = max(self.requests_per_minute, 1)
        per_s = limit / RATE_WINDOW_S
        self._rate_debt = max(self._rate_debt - (now - self._rate_at) * per_s, 0.0)
        self._rate_at = now
        burst = max(math.ceil(limit * min(self.rate_quantum_s, RATE_WINDOW_S) / RATE_WINDOW_S), 1)
        wait = max(self._rate_debt + 1 - burst, 0.0) / per_s
        remaining = max(math.floor(limit - self._rate_debt + 1e-9), 0)
        reset = self._rate_debt / per_s  # until the bucket is back to its initial state
        return {
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": f"{max(reset, 0.001):.3f}s",
        }, wait

    def admit(self) -> tuple[bool, dict[str, str], float]:
        """Take a request from the rate bucket for an edit: (admitted, headers, seconds until the next would be).

        Without ``enforce_rate_limit`` every request is admitted (and counted); refused ones are not counted.
        """
        now = time.monotonic()
        with self._lock:
            _, wait = self._rate(now)
            if wait > 0 and self.enforce_rate_limit:
                headers, _ = self._rate(now)
                return False, headers, wait
            self._rate_debt += 1
            headers, wait = self._rate(now)
        return True, headers, wait

    def rate_headers(self) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers as things stand (takes nothing from the bucket)."""
        with self._lock:
            return self._rate(time.monotonic())[0]

    # -- idempotency keys (the :class:`Idempotency` layer)

    def claim(self, key: tuple[str, str]) -> tuple[Claim, bool]:
        """The key's claim, and whether the caller now owns it (it must :meth:`settle` it)."""
        now = time.monotonic()
        with self._lock:
            for old in [k for k, c in self._claims.items() if c.expires_at <= now]:
                del self._claims[old]
            claim = self._claims.get(key)
            if claim is not None:
                self._claims.move_to_end(key)
                return claim, False
            claim = self._claims[key] = Claim()
            return claim, True

    def settle(self, key: tuple[str, str], claim: Claim, response: Captured | None) -> None:
        """Store a 2xx answer (``None``: forget the key, so a retry runs) and wake the duplicates."""
        with self._lock:
            if response is not None:
                claim.response, claim.expires_at = response, time.monotonic() + self.idempotency_ttl_s
                stored = [k for k, c in self._claims.items() if c.response is not None]
                for old in stored[:max(len(stored) - self.idempotency_max_entries, 0)]:
                    del self._claims[old]
            elif self._claims.get(key) is claim:
                del self._claims[key]
        claim.done.set()

    # -- paid work

    def record(self, kind: str, image: bytes, prompt: str, model: str, key: str | None, *,
               job_id: str | None = None, defect: str | None = None) -> None:
        """One edit performed (``images.edit``, ``bfl.submit``, ``batch.line``): the paid work; ``defect``
        the damage an emulated tier made of it (:mod:`.tiers`)."""
        entry = {"kind": kind, "image_sha256": _sha256(image), "prompt_sha256": _sha256(prompt),
                 "model": model, "idempotency_key": key, "job_id": job_id, "at": time.time(), "defect": defect}
        with self._lock:
            self.performed.append(entry)

    def take_drift(self, path: str | None, prompt: str) -> bool:
        """Whether a ``drift`` rule claims this edit (``path`` None: not an edit request, never)."""
        return path is not None and self.faults.take(path, OUTPUT_KINDS, prompt=prompt) is not None

    def performed_by_image(self) -> dict[str, int]:
        """Edits performed per first-input-image sha256: > 1 means the same image was paid again."""
        with self._lock:
            return dict(Counter(entry["image_sha256"] for entry in self.performed))

    def produced(self, entry: dict[str, Any]) -> bool:
        """Whether a performed edit produced a result (a BFL job can be billed and then end without one:
        moderated, errored, lost, stuck, or its sample expired before anyone downloaded it)."""
        job = self.jobs.get(entry.get("job_id") or "")
        if job is None:
            return True
        return job.fate in (None, "drift") and job.error is None

    def duplicates(self) -> int:
        """Performed edits whose (kind, image, prompt, model) had already produced a result: paid twice.

        A new job after one that died without a result (see :meth:`produced`) is not a duplicate: nothing
        was delivered the first time. Such jobs are counted by :meth:`paid_without_result`.
        """
        seen: set[tuple[str, ...]] = set()
        repeats = 0
        with self._lock:
            for entry in self.performed:
                work = (entry["kind"], entry["image_sha256"], entry["prompt_sha256"], entry["model"])
                repeats += work in seen
                if self.produced(entry):
                    seen.add(work)
        return repeats

    def paid_without_result(self) -> int:
        """Performed (billed) edits that produced no result."""
        with self._lock:
            return sum(not self.produced(entry) for entry in self.performed)

    def stats(self) -> dict[str, Any]:
        """What ``GET /_service/stats`` answers."""
        with self._lock:
            served = dict(self.served)
            kinds = Counter(entry["kind"] for entry in self.performed)
        return {"served": served, "faults": self.faults.to_list(), "jobs": len(self.jobs),
                "performed": sum(kinds.values()), "performed_by_kind": dict(kinds),
                "duplicates": self.duplicates(), "paid_without_result": self.paid_without_result(),
                **{k: served.get(k, 0) for k in ("replayed", "abandoned", "rate_limited")}}

    def reset(self, *, config: bool = False) -> None:
        """Forget requests, work, jobs, files, batches, keys and faults; ``config`` also restores
        the configuration fields to their defaults (test fixtures)."""
        with self._lock:
            self.served.clear()
            self.performed.clear()
            self.jobs.clear()
            self.files.clear()
            self.batches.clear()
            self._rate_debt = 0.0
            self._claims.clear()
            self.log.clear()
        self.faults.set([])
        if config:
            defaults = ServiceState()
            for name in CONFIG_FIELDS:
                setattr(self, name, getattr(defaults, name))


CONFIG_FIELDS = ("api_key", "requests_per_minute", "sample_ttl_s", "latency_s", "enforce_rate_limit", "rate_quantum_s",
                 "idempotency_ttl_s", "idempotency_max_entries", "honour_idempotency",
                 "bfl_max_tasks", "bfl_task_seconds")
