"""A run's outcome: each chunk's status and reason, what may be published, whether the run failed.

The publishing policy has one owner, here. A chunk's own threshold (the edit's ``max_failure_rate``
or a fatal backend error, the gate's ``min_pass_rate``) fails its task, and so the run, with an
alert; it does not hold back the rest of the run:

- ``partial`` (the default): every image that was edited and passed the gate is published, those
  of a gate chunk below ``min_pass_rate`` included (each image's verdict is its own). A chunk whose
  edit failed was never gated, so its images are held back. The run still fails.
- ``strict``: all or nothing. When any chunk or task failed, nothing is published.

Either way the report is written, with each chunk's status and reason, and the run fails when
any chunk or task did. Pure: the caller passes the task states it read from Airflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airflow_image_catalog.storage import exists, read_json
from airflow_image_catalog.workspace.layout import RunLayout
from airflow_image_catalog.workspace.manifest import ChunkManifest

PUBLISH_POLICIES = ("partial", "strict")

OK, EDIT_FAILED, GATE_FAILED, NOT_GATED = "ok", "edit_failed", "gate_failed", "not_gated"
#: chunk statuses whose passing images the ``partial`` policy publishes
PUBLISHABLE = (OK, GATE_FAILED)
FAILED_STATES = ("failed", "upstream_failed")


class PolicyError(ValueError):
    """An unknown publishing policy."""


def check_policy(policy: str) -> str:
    """``policy``, or :class:`PolicyError` naming the field and the choices."""
    if policy not in PUBLISH_POLICIES:
        raise PolicyError(f"publish_policy: {policy!r} is not one of {', '.join(PUBLISH_POLICIES)}")
    return policy


@dataclass
class ChunkOutcome:
    """How one chunk ended: its edit and gate manifests (where written), status and reason."""

    chunk_index: int
    map_index: int
    images: int
    status: str
    reason: str | None = None
    edit_manifest_uri: str | None = None
    gate_manifest_uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def chunk_outcomes(chunk_uris: list[str], run: RunLayout, task_states: dict[str, str], *,
                   edit_task_id: str = "edit") -> list[ChunkOutcome]:
    """Each chunk the cost check sent to editing (``chunk_uris``, in map-index order), as it ended.

    ``task_states`` maps Airflow's task-state keys (``edit_3`` for map index 3) to states. The
    reasons are the ones the failing task wrote into its manifest (``failure``) before failing;
    a task that died without writing one is named with its state. A routed run's chunk is judged by its
    gate manifest after escalation (``runs/<run>/escalation/quality/``) where the escalation step wrote one.
    """
    outcomes = []
    for map_index, uri in enumerate(chunk_uris):
        chunk = ChunkManifest.from_dict(read_json(uri))
        edit_uri, gate_uri = run.edit(chunk.chunk_index), run.gate(chunk.chunk_index)
        escalated = RunLayout(run.escalation).gate(chunk.chunk_index)  # a routed run's chunk after escalation
        gate_uri = escalated if exists(escalated) else gate_uri
        edit = read_json(edit_uri) if exists(edit_uri) else None
        gate = read_json(gate_uri) if exists(gate_uri) else None
        state = task_states.get(f"{edit_task_id}_{map_index}")
        outcome = ChunkOutcome(chunk.chunk_index, map_index, len(chunk.items), OK,
                               edit_manifest_uri=edit_uri if edit else None,
                               gate_manifest_uri=gate_uri if gate else None)
        if state != "success":
            outcome.status = EDIT_FAILED
            outcome.reason = ((edit or {}).get("failure")
                              or f"{edit_task_id}[{map_index}] ended {state or 'without a state'} before writing "
                                 "a result; see its log")
        elif gate is None:
            outcome.status, outcome.reason = NOT_GATED, "the quality gate wrote no verdict for this chunk; see its log"
        elif gate.get("failure"):
            outcome.status, outcome.reason = GATE_FAILED, gate["failure"]
        outcomes.append(outcome)
    return outcomes


def task_failures(task_states: dict[str, str], *, mapped: tuple[str, ...], own_task_id: str) -> list[str]:
    """The run's failed tasks other than the mapped ones (reported per chunk) and this one."""
    failed = {key: state for key, state in task_states.items() if state == "failed" and key != own_task_id
              and not any(key == m or key.startswith(f"{m}_") for m in mapped)}
    return [f"{key} failed" for key in sorted(failed)]


@dataclass
class RunOutcome:
    """The run's verdict: ``failed`` with its reasons, or ``success``; which chunks may publish."""

    policy: str
    chunks: list[ChunkOutcome]
    task_failures: list[str]

    @property
    def failed(self) -> bool:
        return bool(self.task_failures) or any(c.status != OK for c in self.chunks)

    @property
    def reasons(self) -> list[str]:
        return self.task_failures + [f"chunk {c.chunk_index} {c.status.replace('_', ' ')}: {c.reason}"
                                     for c in self.chunks if c.status != OK]

    def publishes(self, chunk_index: int) -> bool:
        """Whether the passing images of this chunk are published under the policy."""
        if self.policy == "strict" and self.failed:
            return False
        return any(c.chunk_index == chunk_index and c.status in PUBLISHABLE for c in self.chunks)

    def held_reason(self, chunk_index: int) -> str:
        """Why an edited image of a chunk that does not publish is held back."""
        if self.policy == "strict" and self.failed:
            return "strict publishing: the run failed, nothing is published"
        chunk = next((c for c in self.chunks if c.chunk_index == chunk_index), None)
        return f"chunk {chunk_index} {chunk.status.replace('_', ' ')}: not gated" if chunk else "not gated"

    def summary(self) -> dict[str, Any]:
        """The report's ``outcome``: status, reasons, policy and each chunk's status."""
        return {"status": "failed" if self.failed else "success", "policy": self.policy, "reasons": self.reasons,
                "chunks": [c.to_dict() for c in self.chunks]}
