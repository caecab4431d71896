"""Fault injection for the local edit service: deterministic, counted rules.

A rule applies to the next ``count`` matching requests (``count: -1`` = all of them).
Request faults (checked when a request arrives on a path starting with ``path``, after
idempotency replays and rate limiting: a replayed or refused request takes no rule):

- ``status``: answer ``status`` (429, 500, 503, 402, ...) with a provider-style error
  body and, if given, ``retry_after_ms`` / ``retry_after`` headers;
- ``drop``: start the response and close the connection mid-body;
- ``hang``: wait ``seconds`` before answering (client timeouts);
- ``latency``: add ``seconds`` to every matching request, then answer normally (during a
  ``hang`` or ``latency`` wait, a client that disconnects abandons the request unedited);
- ``moderation``: OpenAI ``400 moderation_blocked``.

Job fates (taken by the next ``count`` BFL submissions): ``bfl_pending`` (stays
Pending), ``bfl_not_found`` (Task not found), ``bfl_error`` (Error),
``request_moderated`` / ``content_moderated``, ``bfl_expired`` (the sample URL has
expired when downloaded). Batch fates: ``batch_line_error`` (taken per batch line: the
line fails ``400`` with ``code`` or ``invalid_image`` and lands in the error file),
``batch_expired`` / ``batch_failed`` (taken when a batch is created: it ends ``expired``
with every line ``batch_expired`` in the error file, or ``failed`` validation).

Output fault (taken by the next ``count`` edits that validate, on ``/v1/images/edits`` and
BFL submits): ``drift``: the edit succeeds, same size and backdrop, but its product
region has drifted (rotated ~15 degrees and hue-shifted), so a perceptual hash and the
SSIM of the product region change: the identity drift a quality gate must catch.

Response faults (taken by the next ``count`` 2xx answers on a matching path, outside the
idempotency layer: the provider did, stored and billed the work, and its answer is damaged
on the way, as a broken proxy or connection does; a retry with the same ``Idempotency-Key``
gets the stored, intact answer): ``malformed_json`` (the body cut in half),
``bad_base64`` (``b64_json`` not base64), ``not_image`` (``b64_json`` decodes to HTML),
``drop_after`` (half the body, then the connection closes).

``prompt_contains`` (case-insensitive substring) limits a rule to requests whose prompt
contains it. Only kinds taken where the prompt is known accept it (``drift``, the BFL
fates, ``batch_line_error``); request faults are taken before the body is read.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

REQUEST_KINDS = ("status", "drop", "hang", "latency", "moderation")
BFL_KINDS = ("bfl_pending", "bfl_not_found", "bfl_error", "request_moderated", "content_moderated", "bfl_expired")
BATCH_KINDS = ("batch_expired", "batch_failed")
LINE_KINDS = ("batch_line_error",)
OUTPUT_KINDS = ("drift",)
RESPONSE_KINDS = ("malformed_json", "bad_base64", "not_image", "drop_after")
JOB_KINDS = BFL_KINDS + BATCH_KINDS + LINE_KINDS
PROMPT_KINDS = OUTPUT_KINDS + BFL_KINDS + LINE_KINDS  # taken where the prompt is known
ALL_KINDS = REQUEST_KINDS + JOB_KINDS + OUTPUT_KINDS + RESPONSE_KINDS
ERROR_CODES = {402: "insufficient_credits", 408: "timeout", 409: "conflict", 429: "rate_limit_exceeded",
               500: "server_error", 502: "bad_gateway", 503: "service_unavailable"}


@dataclass
class Fault:
    kind: str
    count: int = 1
    path: str = "/"
    status: int = 500
    retry_after_ms: int | None = None
    retry_after: str | None = None
    seconds: float = 0.0
    code: str | None = None
    prompt_contains: str | None = None

    def __post_init__(self):
        if self.kind not in ALL_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (known: {', '.join(ALL_KINDS)})")
        if self.prompt_contains is not None and self.kind not in PROMPT_KINDS:
            raise ValueError(f"prompt_contains only applies to {', '.join(PROMPT_KINDS)}: "
                             f"{self.kind!r} is taken before the prompt is read")

    def matches(self, path: str, prompt: str | None) -> bool:
        if not path.startswith(self.path) or self.count == 0:
            return False
        return self.prompt_contains is None or (prompt is not None
                                                and self.prompt_contains.lower() in prompt.lower())


class FaultPlan:
    """Thread-safe list of rules; ``take`` consumes one use of the first matching rule."""

    def __init__(self, rules: list[Fault] | None = None):
        self._lock = threading.Lock()
        self._rules: list[Fault] = list(rules or [])

    def set(self, rules: list[dict[str, Any] | Fault]) -> None:
        with self._lock:
            self._rules = [r if isinstance(r, Fault) else Fault(**r) for r in rules]

    def add(self, **rule: Any) -> None:
        with self._lock:
            self._rules.append(Fault(**rule))

    def take(self, path: str, kinds: tuple[str, ...], *, prompt: str | None = None) -> Fault | None:
        """The first rule of ``kinds`` matching ``path`` (and ``prompt``, where the caller knows it)."""
        with self._lock:
            for rule in self._rules:
                if rule.kind in kinds and rule.matches(path, prompt):
                    if rule.count > 0:
                        rule.count -= 1
                    return rule
        return None

    def to_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(r) for r in self._rules]


def parse_fault(text: str) -> Fault:
    """CLI form ``kind[:count][,key=value...]``, e.g. ``status:3,status=429,retry_after_ms=200``."""
    head, *pairs = text.split(",")
    kind, _, count = head.partition(":")
    values: dict[str, Any] = {"kind": kind, "count": int(count) if count else 1}
    for pair in pairs:
        key, _, value = pair.partition("=")
        values[key] = value if key in ("path", "retry_after", "code", "prompt_contains") else float(value)
    for key in ("status", "retry_after_ms"):
        if key in values:
            values[key] = int(values[key])
    return Fault(**values)
