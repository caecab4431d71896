"""What every run must satisfy, read from what it left behind: manifests, outputs, the ledger, the service.

Counted, never guessed: the local edit service records every edit it performed (the paid
work) and whether it produced a result; the ledger holds what the pipeline booked; the edit
manifests and outputs hold what each image ended with.

After every run (:func:`check_run`):

- every discovered image has exactly one record, in a final state; none is lost (an ``edited``
  image's output exists with its recorded sha256);
- no work was paid twice while the service honoured idempotency keys (the service's duplicates: the
  same work after it had produced a result); where it ignored them, as the real APIs may, every
  duplicate is booked as *possibly billed* (duplicates <= possibly billed rows): none is silent;
- nothing was booked as billed that was not paid (ledger rows <= paid calls), each ledger row once.

After the reruns (:func:`check_settled`), additionally:

- nothing is left retryable;
- every paid call is booked (ledger rows <= paid calls <= ledger rows + possibly billed rows; equal to
  the ledger rows when the service honoured the keys and nothing was possibly billed);
- every call that produced a result produced an output (produced calls = edited images x steps,
  plus the duplicates: a result produced again after its answer was lost). An image edited from a
  cache entry this run's own call wrote counts as that call's output: a task killed after the result
  landed in the cache (booked before) and before its state said ``edited`` leaves the result there, and
  the rerun takes it for free (see :func:`own_cache_hits`); a hit on an entry of another run does not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from airflow_image_catalog.storage import StorageError, list_objects, read_bytes, read_json
from airflow_image_catalog.workspace.manifest import (
    FINAL_STATUSES,
    EditRecord,
    ImageStatus,
    sha256_hex,
)


@dataclass
class Outcome:
    """One run's facts.

    :param discovered: image ids the run's chunk manifests name.
    :param records: every edit record of the run (from the edit manifests, else the per-image state).
    :param paid: the service's performed edits (each a dict, see ``ServiceState.record``).
    :param produced: how many of them produced a result.
    :param duplicates: the service's count of work paid twice.
    :param ledger_rows: the ledger's entries for the run known to be billed.
    :param ledger_ids: the ids of all its entries.
    :param possibly_billed: its possibly billed entries (an answer lost after the body was sent).
    :param idempotent: the service honoured idempotency keys during the run.
    :param steps: recipe steps (paid calls per edited image).
    :param own_cache_hits: edited images served from a cache entry a call of this run wrote (and no
        other image's call produced): see :func:`own_cache_hits`.
    """

    discovered: list[str]
    records: list[EditRecord]
    paid: list[dict[str, Any]]
    produced: int
    duplicates: int
    ledger_rows: int
    ledger_ids: list[str]
    steps: int = 1
    lost: list[str] = field(default_factory=list)
    possibly_billed: int = 0
    idempotent: bool = True
    own_cache_hits: int = 0

    def statuses(self) -> Counter:
        return Counter(r.status for r in self.records)

    def calls_per_image(self) -> dict[str, int]:
        """Paid calls per image, matched by the idempotency scope (its cache key prefix)."""
        scopes = {r.cache_key[:32]: r.image_id for r in self.records if r.cache_key}
        counts: Counter = Counter()
        for entry in self.paid:
            scope = (entry.get("idempotency_key") or "")[:32]
            counts[scopes.get(scope, "?")] += 1
        return dict(counts)


def listing(prefix: str) -> list[str]:
    """URIs of the JSON objects under ``prefix``, sorted; none when it does not exist (yet)."""
    try:
        return sorted(o.uri for o in list_objects(prefix) if o.uri.endswith(".json"))
    except StorageError:
        return []


def own_cache_hits(workspace: str, run_key: str, records: list[EditRecord]) -> int:
    """Edited images the cache served from an entry this run's own paid call wrote, one per entry, none
    whose key an image edited by a call also has (that call's output is counted already).

    The window it accounts for: the inline path books a paid result, puts it in the cache, writes the
    output, then the state; a task killed before the state leaves the image ``submitted``, and the
    rerun finds the result in the cache (a hit, $0). Paid once, booked once, delivered once.
    """
    from airflow_image_catalog.workspace.cache import ResultCache

    cache = ResultCache(workspace)
    edited = [r for r in records if r.status == ImageStatus.EDITED and r.cache_key]
    called = {r.cache_key for r in edited if not r.cache_hit}
    hits = {r.cache_key for r in edited if r.cache_hit} - called
    return sum((((cache.get_meta(key) or {}).get("created_by") or {}).get("run_key") == run_key) for key in hits)


def collect(workspace: str, run_key: str, service_state: Any, *, steps: int = 1) -> Outcome:
    """Read one run's outcome from its workspace, its ledger and the edit service's counts.

    Chunks without an edit manifest (a task that died) are read from their per-image state.
    """
    from airflow_image_catalog.pipeline.costing.ledger import Ledger
    from airflow_image_catalog.workspace.layout import WorkspaceLayout
    from airflow_image_catalog.workspace.manifest import ChunkManifest
    from airflow_image_catalog.workspace.state import ChunkState

    run = WorkspaceLayout(workspace).run(run_key)
    chunks = [ChunkManifest.from_dict(read_json(uri)) for uri in listing(run.chunks)]
    discovered = [item.image_id for chunk in chunks for item in chunk.items]
    records: list[EditRecord] = []
    for chunk in chunks:
        try:
            records += [EditRecord(**item) for item in read_json(run.edit(chunk.chunk_index))["items"]]
        except StorageError:  # no manifest: the task never finished; its state says what each image reached
            states = ChunkState(run.root, chunk.chunk_index).load()
            records += [ChunkState.record_of(s) for s in states.values()]
    lost = sorted(set(discovered) - {r.image_id for r in records})
    for record in records:
        if record.status == ImageStatus.EDITED:
            try:
                intact = sha256_hex(read_bytes(record.output_uri)) == record.output_sha256
            except StorageError:
                intact = False
            if not intact:
                lost.append(record.image_id)
    entries = Ledger(workspace).entries(run_key=run_key)
    paid = list(service_state.performed)
    produced = sum(service_state.produced(entry) for entry in paid)
    maybe = sum(e.possibly_billed for e in entries)
    return Outcome(discovered, records, paid, produced, service_state.duplicates(), len(entries) - maybe,
                   [e.entry_id for e in entries], steps, lost, maybe, service_state.honour_idempotency,
                   own_cache_hits(workspace, run_key, records))


def check_run(outcome: Outcome) -> list[str]:
    """Violations after any run (empty: all hold)."""
    problems = []
    counts = Counter(r.image_id for r in outcome.records)
    if sorted(counts) != sorted(set(outcome.discovered)) or any(n != 1 for n in counts.values()):
        extra = {i: n for i, n in counts.items() if n != 1}
        problems.append(f"not exactly one record per image: discovered {len(outcome.discovered)}, "
                        f"records {len(outcome.records)}, repeated {extra}")
    unfinished = [r.image_id for r in outcome.records if r.status not in FINAL_STATUSES]
    if unfinished:
        problems.append(f"images without a final state: {unfinished}")
    if outcome.lost:
        problems.append(f"lost images (no record, or an edited image without its output): {outcome.lost}")
    if outcome.duplicates and outcome.idempotent:
        problems.append(f"{outcome.duplicates} edits paid twice at the service")
    if outcome.duplicates > outcome.possibly_billed and not outcome.idempotent:
        problems.append(f"{outcome.duplicates} edits paid twice at the service, only {outcome.possibly_billed} "
                        "booked as possibly billed: a silent double charge")
    if outcome.ledger_rows > len(outcome.paid):
        problems.append(f"ledger books {outcome.ledger_rows} calls, the service was paid for {len(outcome.paid)}")
    if len(set(outcome.ledger_ids)) != len(outcome.ledger_ids):
        problems.append("a ledger entry is booked twice")
    for record in outcome.records:
        if record.status in FINAL_STATUSES and record.status != ImageStatus.EDITED and not record.error:
            problems.append(f"{record.image_id} is {record.status} without a reason")
    return problems


def check_settled(outcome: Outcome) -> list[str]:
    """Violations once the reruns are done: :func:`check_run` plus the end-to-end accounting."""
    problems = check_run(outcome)
    left = [r.image_id for r in outcome.records if r.status == ImageStatus.FAILED_RETRYABLE]
    if left:
        problems.append(f"still retryable after the reruns: {left}")
    if not outcome.ledger_rows <= len(outcome.paid) <= outcome.ledger_rows + outcome.possibly_billed:
        problems.append(f"paid calls {len(outcome.paid)} not booked: ledger rows {outcome.ledger_rows}, "
                        f"possibly billed {outcome.possibly_billed}")
    called = sum(r.status == ImageStatus.EDITED and not r.cache_hit for r in outcome.records)
    outputs = (called + outcome.own_cache_hits) * outcome.steps
    if outcome.produced != outputs + outcome.duplicates:
        own = f" (incl. {outcome.own_cache_hits} from this run's cache entries)" if outcome.own_cache_hits else ""
        problems.append(f"calls that produced a result {outcome.produced} != outputs {outputs}{own} "
                        f"+ duplicates {outcome.duplicates}")
    return problems
