"""The cost ledger: one durable record per paid call, partitioned by day, read by budget checks.

Every paid call's actual usage (tokens, credits, images) and its USD cost are written to object
storage right after the call returns, before the result cache and the image's state, so money
spent is booked even if the task dies a moment later. The price of that ordering is that a rerun
after such a crash books the same call again; the ledger absorbs that (see :func:`entry_id_for`).

Object layout under ``<workspace>/ledger/``::

    day=YYYY-MM-DD/run=<run_key>/<entry_id>.json    one entry (immutable, never overwritten)
    day=YYYY-MM-DD/run=<run_key>/_summary.json      cache: entry id -> USD, and the total
    runs/run=<run_key>/day=YYYY-MM-DD.json          index: the days a run has entries on

Consistency: entries are the truth and immutable (never overwritten, never deleted by this code);
a summary is a cache of ``entry id -> USD`` for some of them. A reader lists the partition (which
ids exist: S3 listings are strongly consistent), takes the figures of listed ids from the summary,
reads only the listed entries the summary lacks, and writes the summary back when it learnt
something. So a summary can never make a total wrong, only cheaper: ids no longer listed are
ignored, a stale summary just means more reads, and concurrent refreshes (last writer wins) each
write a valid subset. A run in progress is therefore read incrementally rather than entry by entry
on every budget check. The run index is written before a run's first entry of a day, so every
partition is indexed; it lets ``run_spend`` list the run's partitions instead of the whole ledger.
No Airflow import: operators, the cost check, the report and notebooks share it.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from airflow_image_catalog.pipeline.costing.pricing import Prices, PricingError, cost_of_usage
from airflow_image_catalog.pipeline.costing.pricing.estimate import usage_tokens
from airflow_image_catalog.pipeline.costing.pricing.prices import resolve_prices
from airflow_image_catalog.storage import (
    StorageError,
    exists,
    join_uri,
    list_objects,
    read_json,
    write_bytes,
    write_json,
)
from airflow_image_catalog.workspace.layout import WorkspaceLayout

log = logging.getLogger(__name__)

SUMMARY_NAME = "_summary.json"
SUMMARY_SCHEMA = 1
USD_DIGITS = 9  # as the pricing module: nano-dollars
BASES = ("usage", "price_table", "estimate", "unknown")
REMOTE_WORKERS = 16  # concurrent GETs/LISTs on remote stores; file:// reads serially (GIL-bound anyway)
_SAFE_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # like manifest.safe_run_key: no '/', no hidden names
_MONTH = re.compile(r"\d{4}-\d{2}")
T = TypeVar("T")
R = TypeVar("R")


def _usd(value: float) -> float:
    return round(value, USD_DIGITS)


def _utc(at: datetime | str | None) -> datetime:
    """``at`` as an aware UTC datetime (naive values are taken as UTC); now when None."""
    if at is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_day(day: str) -> str:
    try:
        if date.fromisoformat(day).isoformat() == day:
            return day
    except (TypeError, ValueError):
        pass
    raise ValueError(f"day must be YYYY-MM-DD, got {day!r}")


def _days_of(month: str) -> list[str]:
    """Every calendar day of ``YYYY-MM``."""
    if not isinstance(month, str) or not _MONTH.fullmatch(month) or not 1 <= int(month[5:]) <= 12:
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    year, number = int(month[:4]), int(month[5:])
    return [date(year, number, d).isoformat() for d in range(1, calendar.monthrange(year, number)[1] + 1)]


def _check_run_key(run_key: str) -> str:
    """Run keys become object key components: no '/', no '..', no hidden (dot) names."""
    if not isinstance(run_key, str) or not _SAFE_KEY.fullmatch(run_key):
        raise ValueError(f"run_key must match {_SAFE_KEY.pattern} (see manifest.safe_run_key), got {run_key!r}")
    return run_key


# -- entries -----------------------------------------------------------------------------------------
def entry_id_for(cache_key: str, call_index: int, request_id: str | None = None) -> str:
    """The stable id of one paid call: sha256 of (cache key, call index, provider request id).

    Dedupe rule: the same (cache key, index of the call in the image's chain of calls) booked
    again is the same call replayed. A rerun after a crash between the ledger write and the state
    write repeats the image's calls with idempotency keys derived from the cache key, and a provider
    or gateway that honours them answers with the original response (and bills nothing new), so
    the rerun's entries must collapse onto the first ones. When the backend reports the provider's
    ``request_id`` / ``job_id``, it is part of the id: a provider that ignored the idempotency key
    did the work (and billed it) twice under two ids, and that must show as two rows, not be hidden.
    Without such an id (OpenAI's synchronous usage carries none) a replay and a second bill look
    the same; the ledger books one.
    """
    if not cache_key:
        raise ValueError("a ledger entry needs the image's cache key")
    text = f"{cache_key}\n{int(call_index)}\n{request_id or ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class LedgerEntry:
    """One paid call. ``usd`` rests on ``basis``: ``usage`` (the tokens or credits the provider
    reported), ``price_table`` (images x list price: the provider reports no figures), ``estimate``
    (no usage came back, or no price for the model: the pre-run estimate is booked) or ``unknown``
    (neither: booked at 0 and logged).

    ``possibly_billed``: not a call we know was billed, but an attempt whose answer was lost after its
    body was sent whole (a read timeout, a dropped connection, a damaged answer), then retried or
    given up: the provider may have done and billed it (none documents idempotency keys on edits).
    Budgets count it (a cap must not overspend if it was billed); reports show it apart."""

    entry_id: str
    day: str
    at: str
    run_key: str
    image_id: str
    cache_key: str
    provider: str
    usd: float
    basis: str
    call_index: int = 0
    request_id: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    chunk_index: int | None = None
    source_sha256: str | None = None
    step: str | None = None
    model: str | None = None
    recipe: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    estimated_usd: float | None = None
    batch: bool = False
    possibly_billed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        """Unknown keys are dropped, so entries written by a newer version still read."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


def _reports_usage(record: Mapping[str, Any]) -> bool:
    """Did the provider report billable figures (tokens, credits), or is the cost list price x images?"""
    return usage_tokens(record) is not None or record.get("credits") is not None


def _price(record: Mapping[str, Any], prices: Prices | PricingError, estimate: float | None,
           where: str) -> tuple[float, str]:
    """(USD, basis) for one usage record: actual usage first, then the estimate."""
    try:
        if isinstance(prices, PricingError):
            raise prices
        usd = cost_of_usage(record, prices)
    except PricingError as exc:  # keep the call on the books: booked at the estimate, re-priceable from usage
        log.warning("%s: %s; booking the estimate", where, exc)
        usd = None
    if usd is not None:
        return usd, "usage" if _reports_usage(record) else "price_table"
    if estimate is not None:
        return _usd(float(estimate)), "estimate"
    log.warning("%s: no usage and no estimate: booked at $0 (basis 'unknown')", where)
    return 0.0, "unknown"


def _estimates(estimated_usd: float | Sequence[float | None] | None, calls: int) -> list[float | None]:
    """Per-call estimates: a sequence is per call; a number is the image's, spread evenly over its calls."""
    if estimated_usd is None or calls == 0:
        return [None] * calls
    if isinstance(estimated_usd, int | float):
        return [_usd(float(estimated_usd) / calls)] * calls
    per_call = list(estimated_usd)
    return [per_call[i] if i < len(per_call) else None for i in range(calls)]


def entries_for_usage(
    usage: Sequence[Mapping[str, Any]],
    *,
    cache_key: str,
    run_key: str,
    image_id: str,
    prices: Prices | str | None = None,
    estimated_usd: float | Sequence[float | None] | None = None,
    first_call_index: int = 0,
    at: datetime | str | None = None,
    cache_hit: bool = False,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: int | None = None,
    chunk_index: int | None = None,
    source_sha256: str | None = None,
    recipe: str | None = None,
) -> list[LedgerEntry]:
    """One entry per usage record (a backend writes one record per paid call), in call order.

    :param usage: the image's usage records (``EditResult.usage``); ``usage[i]`` is call
        ``first_call_index + i`` of the image's chain (the deferrable path books one step at a time).
    :param estimated_usd: what was expected: per call (a sequence), or for the image (a number,
        spread evenly); booked when a record carries no usage, and kept for reconciliation.
    :param at: when the calls returned (default now); its UTC date is the entry's partition.
    :param cache_hit: the result came from the result cache: nothing was paid, no entries. Records
        marked ``cache_hit`` / ``cached`` are skipped too.
    """
    if cache_hit:
        return []
    _check_run_key(run_key)
    try:  # once, not per record (a user's price file may live in object storage)
        table: Prices | PricingError = resolve_prices(prices)
    except PricingError as exc:  # the calls were paid: book them at the estimate rather than not at all
        table = exc
    moment = _utc(at)
    stamp, day = moment.isoformat(timespec="milliseconds"), moment.date().isoformat()
    entries = []
    for offset, (record, estimate) in enumerate(zip(usage, _estimates(estimated_usd, len(usage)), strict=True)):
        if record.get("cache_hit") or record.get("cached"):
            continue
        index = first_call_index + offset
        request_id = record.get("request_id") or record.get("job_id")
        usd, basis = _price(record, table, estimate, f"ledger {image_id} call {index}")
        provider = record.get("provider") or ("local" if "cost_usd" in record else "unknown")
        entries.append(LedgerEntry(
            entry_id=entry_id_for(cache_key, index, request_id), day=day, at=stamp, run_key=run_key,
            image_id=image_id, cache_key=cache_key, provider=str(provider), usd=usd, basis=basis,
            call_index=index, request_id=None if request_id is None else str(request_id), dag_id=dag_id,
            run_id=run_id, task_id=task_id, map_index=map_index, chunk_index=chunk_index,
            source_sha256=source_sha256, step=record.get("step"), model=record.get("model"), recipe=recipe,
            usage=dict(record), estimated_usd=estimate, batch=bool(record.get("batch")),
            possibly_billed=bool(record.get("possibly_billed"))))
    return entries


def possibly_billed_entries(marks: Sequence[Mapping[str, Any]], paid_usage: Sequence[Mapping[str, Any]], *,
                            provider: str, model: str | None, estimated_usd: float | None = None,
                            **facts: Any) -> list[LedgerEntry]:
    """One ``possibly_billed`` entry per attempt whose answer was lost after its body was sent.

    :param marks: the attempts (:class:`~airflow_image_catalog.backends.http.PaidScope`): ``step``, ``op``,
        ``attempt``, ``reason``, ``idempotency_key``.
    :param paid_usage: the image's usage records; a lost attempt is priced as the call of the same step that
        did answer (the same request), else at ``estimated_usd`` (the per-call estimate).
    :param facts: as :func:`entries_for_usage` (``cache_key``, ``run_key``, ``image_id``, ...).

    Each entry's id comes from the attempt's idempotency key and number, so it is booked once.
    """
    by_step = {record.get("step"): record for record in paid_usage}
    records = []
    for mark in marks:
        base = {key: value for key, value in by_step.get(mark.get("step"), {}).items() if key != "job_id"}
        records.append({"provider": provider, "model": model, "images": 1, **base, **mark, "possibly_billed": True,
                        "request_id": f"possibly-billed:{mark.get('idempotency_key')}:{mark.get('attempt')}"})
    return entries_for_usage(records, estimated_usd=[estimated_usd] * len(records), **facts)


# -- storage -----------------------------------------------------------------------------------------
@dataclass
class _Partition:
    """One (day, run) prefix as listed: its entry objects by id and its summary object, if any."""

    day: str
    run_key: str
    entries: dict[str, str] = field(default_factory=dict)
    summary: str | None = None


def _split_listed(uri: str) -> tuple[str, str, str] | None:
    """``.../day=D/run=R/<name>`` -> (D, R, name); anything else (the run index) -> None.

    ``file://`` listings percent-encode ``=``; our key components never contain ``%``.
    """
    parts = [unquote(part) for part in uri.rsplit("/", 3)[1:]]
    if len(parts) != 3 or not parts[0].startswith("day=") or not parts[1].startswith("run="):
        return None
    return parts[0][4:], parts[1][4:], parts[2]


class Ledger:
    """The cost ledger under ``<workspace>/ledger/``: :meth:`record` paid calls, read totals.

    :param workspace_uri: the workspace (``file://`` or ``s3://``) shared by every run.
    :param workers: concurrent reads and listings (default: 1 on ``file://``, 16 elsewhere).
    """

    def __init__(self, workspace_uri: str, *, workers: int | None = None):
        self.root = WorkspaceLayout(workspace_uri).ledger
        local = urlsplit(self.root).scheme == "file"
        self.workers = workers if workers is not None else (1 if local else REMOTE_WORKERS)
        self._local = local
        self._indexed: set[tuple[str, str]] = set()  # (day, run) index markers this process wrote

    # -- layout ----------------------------------------------------------------------------------
    def partition_uri(self, day: str, run_key: str) -> str:
        return join_uri(self.root, f"day={_check_day(day)}", f"run={_check_run_key(run_key)}")

    def entry_uri(self, entry: LedgerEntry) -> str:
        return join_uri(self.partition_uri(entry.day, entry.run_key), f"{entry.entry_id}.json")

    def _index_uri(self, run_key: str, day: str | None = None) -> str:
        folder = join_uri(self.root, "runs", f"run={_check_run_key(run_key)}")
        return folder if day is None else join_uri(folder, f"day={day}.json")

    # -- writing ---------------------------------------------------------------------------------
    def record(self, entries: Iterable[LedgerEntry]) -> int:
        """Write each entry durably as its own object; returns how many were new.

        Idempotent: an entry whose id is already booked for its run, on its day or the day before
        (a replay across midnight: providers keep idempotency keys for 24 h), is left alone. Two
        processes booking the same new id at the same moment may both count it, but write one object.
        """
        new = 0
        for entry in entries:
            uri = self.entry_uri(entry)
            earlier = (date.fromisoformat(entry.day) - timedelta(days=1)).isoformat()
            twin = join_uri(self.partition_uri(earlier, entry.run_key), f"{entry.entry_id}.json")
            if exists(uri) or exists(twin):
                continue
            self._index(entry.day, entry.run_key)
            write_json(uri, entry.to_dict())
            new += 1
        return new

    def _index(self, day: str, run_key: str) -> None:
        """Mark that ``run_key`` has entries on ``day`` (before the first of them is written)."""
        if (day, run_key) not in self._indexed:
            write_json(self._index_uri(run_key, day), {"day": day, "run_key": run_key})
            self._indexed.add((day, run_key))

    # -- reading ---------------------------------------------------------------------------------
    def _map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        items = list(items)
        if self.workers <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(min(self.workers, len(items))) as pool:
            return list(pool.map(fn, items))

    def _list(self, prefix: str) -> list[str]:
        """Object URIs under ``prefix``; a prefix that does not exist is empty (S3 already says so)."""
        if self._local:
            from airflow_image_catalog.storage.local import uri_to_path

            if not uri_to_path(prefix).exists():
                return []
        return [obj.uri for obj in list_objects(prefix)]

    def run_days(self, run_key: str) -> list[str]:
        """The days ``run_key`` has entries on, from the run index."""
        names = (unquote(uri.rsplit("/", 1)[-1]) for uri in self._list(self._index_uri(run_key)))
        return sorted(name[4:-5] for name in names if name.startswith("day=") and name.endswith(".json"))

    def _partitions(self, day: str | None, month: str | None, run_key: str | None) -> list[_Partition]:
        """The (day, run) partitions a query covers, listed (one listing per day or partition)."""
        if day is not None and month is not None:
            raise ValueError("give a day or a month, not both")
        days = [_check_day(day)] if day is not None else _days_of(month) if month is not None else None
        if run_key is not None:
            wanted = self.run_days(run_key)
            prefixes = [self.partition_uri(d, run_key) for d in wanted if days is None or d in days]
        else:
            prefixes = [self.root] if days is None else [join_uri(self.root, f"day={d}") for d in days]
        found: dict[tuple[str, str], _Partition] = {}
        for uri in (uri for listing in self._map(self._list, prefixes) for uri in listing):
            split = _split_listed(uri)
            if split is None or (run_key is not None and split[1] != run_key):
                continue
            part = found.setdefault(split[:2], _Partition(*split[:2]))
            if split[2] == SUMMARY_NAME:
                part.summary = uri
            elif split[2].endswith(".json"):
                part.entries[split[2][:-5]] = uri
        return [found[key] for key in sorted(found)]

    def _read(self, uris: Iterable[str]) -> list[LedgerEntry]:
        return self._map(lambda uri: LedgerEntry.from_dict(read_json(uri)), uris)

    def entries(self, day: str | None = None, month: str | None = None,
                run_key: str | None = None) -> list[LedgerEntry]:
        """Every entry a query covers (read one by one: the truth), by time then id."""
        uris = [uri for part in self._partitions(day, month, run_key) for uri in part.entries.values()]
        return sorted(self._read(uris), key=lambda e: (e.at, e.entry_id))

    def spent(self, day: str | None = None, month: str | None = None, run_key: str | None = None) -> float:
        """USD booked on ``day`` or in ``month`` (UTC), for ``run_key`` or all runs; all time if neither.

        Each (day, run) partition costs one listing, its summary, and a read of each listed entry
        the summary does not cover yet (then the summary is refreshed to cover it).
        """
        summaries = self._summaries(self._partitions(day, month, run_key))
        return _usd(math.fsum(summary["usd"] for summary in summaries))

    def run_spend(self, run_key: str) -> float:
        """USD booked for one run, on whatever days it ran (what the mid-run guard adds to)."""
        return self.spent(run_key=run_key)

    def summarise(self, day: str, run_key: str, *, rebuild: bool = False) -> dict[str, Any]:
        """Bring the summary of one (day, run) up to date, write it and return it: the publisher
        calls this at the end of a run so later budget checks find it warm. ``rebuild`` re-reads
        every entry instead of trusting cached figures (repair after a manual edit of an entry)."""
        parts = self._partitions(day, None, run_key) or [_Partition(_check_day(day), run_key)]
        return self._summaries(parts, write=True, rebuild=rebuild)[0]

    def summarise_run(self, run_key: str, *, rebuild: bool = False) -> list[dict[str, Any]]:
        """:meth:`summarise` every day ``run_key`` has entries on."""
        return self._summaries(self._partitions(None, None, run_key), write=True, rebuild=rebuild)

    def _summaries(self, parts: list[_Partition], *, write: bool = False,
                   rebuild: bool = False) -> list[dict[str, Any]]:
        """Each partition's summary: cached figures for listed ids, plus the listed entries they lack
        (read concurrently across partitions); written back where it learnt something (or ``write``)."""
        cached = [{} for _ in parts] if rebuild else self._map(self._cached, parts)
        missing = [(n, entry_id) for n, part in enumerate(parts) for entry_id in part.entries
                   if entry_id not in cached[n]]
        fresh: list[dict[str, float]] = [{} for _ in parts]
        for (n, entry_id), entry in zip(missing, self._read(parts[n].entries[i] for n, i in missing), strict=True):
            fresh[n][entry_id] = entry.usd
        return [self._summary(part, {**cached[n], **fresh[n]}, write=write or bool(fresh[n]))
                for n, part in enumerate(parts)]

    def _cached(self, part: _Partition) -> dict[str, float]:
        """The summary's entry id -> USD, for the ids still listed; {} when there is no usable summary."""
        if part.summary is None:
            return {}
        try:
            summary = read_json(part.summary)
            if summary.get("schema") != SUMMARY_SCHEMA:
                return {}
            cached = summary["usd_by_entry"]
            return {entry_id: float(cached[entry_id]) for entry_id in part.entries if entry_id in cached}
        except (StorageError, ValueError, TypeError, KeyError, AttributeError) as exc:  # rebuilt, never trusted
            log.warning("ledger summary %s unusable (%s); reading its entries", part.summary, exc)
            return {}

    def _summary(self, part: _Partition, by_entry: dict[str, float], *, write: bool) -> dict[str, Any]:
        summary = {
            "schema": SUMMARY_SCHEMA, "day": part.day, "run_key": part.run_key, "count": len(by_entry),
            "usd": _usd(math.fsum(by_entry.values())),
            "summarised_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "usd_by_entry": dict(sorted(by_entry.items())),
        }
        if write and by_entry:  # an empty partition has nothing to cache (and no folder to create)
            uri = join_uri(self.partition_uri(part.day, part.run_key), SUMMARY_NAME)
            try:  # compact: ~45 bytes an entry
                write_bytes(uri, json.dumps(summary, separators=(",", ":")).encode())
            except StorageError as exc:  # a cache: the totals stand without it
                log.warning("could not write the ledger summary %s: %s", uri, exc)
        return summary


# -- reconciliation and reports ----------------------------------------------------------------------
def reconcile(estimate_usd: float, actual_usd: float, *, warn_pct: float = 25.0,
              label: str = "run") -> dict[str, Any]:
    """Estimate vs actual: the error in USD and in percent of the estimate; a large error warns.

    ``error_pct`` is None when the estimate is 0 (no percentage of nothing; JSON has no infinity):
    then any actual spend is a warning. A warning is also logged, so it reaches the task log.
    """
    estimate, actual = float(estimate_usd), float(actual_usd)
    if not (math.isfinite(estimate) and math.isfinite(actual)):
        raise ValueError(f"estimate and actual must be finite, got {estimate_usd!r} and {actual_usd!r}")
    error = _usd(actual - estimate)
    if estimate == 0:
        pct, warning = None, actual != 0
        detail = "no estimate" if actual else "no error"
    else:
        pct = round(error / abs(estimate) * 100, 2)
        warning = abs(pct) >= warn_pct
        detail = f"{pct:+.1f}%"
    message = f"{label}: actual ${actual:.4f} vs estimate ${estimate:.4f} ({detail})"
    if warning:
        message += f": beyond the {warn_pct:g}% tolerance"
        log.warning(message)
    return {"estimate_usd": _usd(estimate), "actual_usd": _usd(actual), "error_usd": error, "error_pct": pct,
            "warning": warning, "message": message}


def _tokens(usage: Mapping[str, Any]) -> tuple[int, int]:
    """(tokens in, tokens out) of one usage record, 0 where the record has none."""
    tokens = usage_tokens(usage)
    if tokens is None:
        return 0, 0
    total_in = usage.get("input_tokens")
    return (int(total_in) if total_in is not None else tokens.image_in + tokens.text_in), tokens.image_out


def _group(entries: Sequence[LedgerEntry]) -> dict[str, Any]:
    possibly = [entry for entry in entries if entry.possibly_billed]
    entries = [entry for entry in entries if not entry.possibly_billed]
    tokens = [_tokens(entry.usage) for entry in entries]
    return {
        "calls": len(entries),
        "images": len({entry.image_id for entry in entries}),
        "tokens_in": sum(t[0] for t in tokens),
        "tokens_out": sum(t[1] for t in tokens),
        "credits": _usd(math.fsum(float(e.usage.get("credits") or 0) for e in entries)),
        "usd": _usd(math.fsum(entry.usd for entry in entries)),
        "possibly_billed_calls": len(possibly),
        "possibly_billed_usd": _usd(math.fsum(entry.usd for entry in possibly)),
    }


def possibly_billed_calls(entries: Iterable[LedgerEntry]) -> list[dict[str, Any]]:
    """The possibly billed attempts among ``entries``, as the report and the alert list them."""
    return [{"image_id": e.image_id, "step": e.step, "op": e.usage.get("op"), "attempt": e.usage.get("attempt"),
             "reason": e.usage.get("reason"), "usd": e.usd} for e in entries if e.possibly_billed]


def possibly_billed_note(calls: Sequence[Mapping[str, Any]]) -> str | None:
    """The one sentence the report and the alert say about possibly billed attempts (None: there were none)."""
    if not calls:
        return None
    usd = math.fsum(float(call.get("usd") or 0) for call in calls)
    named = [" ".join(str(part) for part in (call.get("image_id"), call.get("step")) if part)
             + f" ({call.get('reason')})" for call in calls[:10]]
    where = ", ".join(named) + (f" and {len(calls) - 10} more" if len(calls) > 10 else "")
    return (f"possibly billed twice: ${usd:.4f} in {len(calls)} request(s) retried after their answer was lost "
            f"(the provider may have done the work): {where}; check the provider's usage page")


def cost_summary(entries: Iterable[LedgerEntry]) -> dict[str, Any]:
    """Calls, distinct images, tokens in/out, credits and USD: in total and per recipe, per model
    (``provider/model``) and per provider, for the run report. ``calls`` and ``usd`` are the calls
    known to be billed; ``possibly_billed_calls`` / ``_usd`` the attempts that may have been too."""
    entries = list(entries)
    keys: dict[str, Callable[[LedgerEntry], str]] = {
        "by_recipe": lambda e: e.recipe or "unknown",
        "by_model": lambda e: f"{e.provider}/{e.model or '*'}",
        "by_provider": lambda e: e.provider,
    }
    summary: dict[str, Any] = {"total": _group(entries)}
    for name, key in keys.items():
        groups: dict[str, list[LedgerEntry]] = {}
        for entry in entries:
            groups.setdefault(key(entry), []).append(entry)
        summary[name] = {value: _group(members) for value, members in sorted(groups.items())}
    return summary
