"""The journal's one interface, and what every backend promises when things go wrong.

Two backends implement it: :class:`daemon.journal.store.Journal` (SQLite on local disk, one
node, the default) and :class:`daemon.journal.cluster.ClusterJournal` (PostgreSQL, several
nodes, ``cluster:`` in the config). The service loop, the outcome recorder, start-up recovery,
upkeep and ``hotmatte status`` only use what is listed here, so they run unchanged on either.

State machine (both backends)::

    pending ──claim──▶ running ──▶ done
       ▲                  │   └──▶ failed      (permanent error, or retries used up)
       └──── retry_later ─┘                    (transient error, with backoff)

Failure semantics (the rules of the hardening issue, for both backends):

- **No transition is lost.** A write either happens or raises; it never half-happens. While the
  storage is out of reach for a reason that will pass (SQLite: disk full; PostgreSQL: server
  down or restarting, network gone) the write *waits and retries the same transition*, calling
  the backend's wait hook (``on_disk_full`` / ``on_unavailable``) so the daemon can say so
  once, keep its watchdog fed and give up waiting when asked to stop. Nothing is taken from
  the queue while a write waits: a node that lost its storage stops taking work.
- **Damage is final.** A journal that can no longer be trusted (SQLite: corrupt, read-only;
  PostgreSQL: the schema is missing or refused) raises :class:`~daemon.errors.JournalUnusable`
  and is remembered in ``fault``; the daemon stops with exit 2 rather than spin.
- **At least once, never twice visible.** A crash (or a node's death) leaves a row
  ``running``; it goes back to ``pending`` (SQLite: :meth:`reset_running` at the next start;
  PostgreSQL: also another node's stalled-job sweep) with ``crashes`` counted, so a file may
  be processed again but its output is replaced atomically and only one outcome is recorded.
- **Outcomes are fenced** (PostgreSQL): an outcome for a claim that was taken back from this
  node meanwhile changes nothing and is logged as ``stale_outcome``.
- **An operator's retry is all or nothing, and only for what is still failed.**
  :meth:`requeue_failed` (the console's Failures page, ``hotmatte retry``) puts the rows that are
  *still* ``failed`` when its transaction runs back to ``pending``, due now, with a fresh retry
  budget, and returns their ids; a row the daemon re-offered, pruned or already requeued
  meanwhile is left alone and not returned, so two operators retrying at once requeue it once.
  PostgreSQL: each requeued row gets a new Procrastinate job under the same queueing-lock rules
  as an arrival (folder + path + fingerprint; one waiting job per version), in the same
  transaction as the row, so exactly one node takes it. Readers that are not the service
  (console, CLI) open their own connection; while the storage is out of reach their reads and
  retries wait as any write does, unless their wait hook gives up (the console's does, after
  a few seconds, and says "the journal cannot be read").
- **An operator's Review decision is taken once.** A ``done`` row whose result went to
  review_dir (``Entry.review``; its cut's ``Entry.confidence`` below the folder's
  ``review_below``) waits for the console's Review page. :meth:`decide` applies a decision only
  to a row *still* done and in review, and returns False (nothing recorded) otherwise: decided
  already by another operator, or the file offered again meanwhile. approve: stays done, no
  longer in review, ``output`` where the result now is; reject: ``failed`` with error class
  ``RejectedByOperator``; rerun: ``pending``, due now, with ``Entry.profile`` set to the chosen
  profile, which the loop runs instead of the folder's (``entry.profile or folder.profile``).
  Each applied decision is one :class:`~daemon.journal.store.DecisionRecord` in
  :meth:`decisions`, written in the same transaction as the row. PostgreSQL: a rerun also
  gets a new Procrastinate job under the queueing-lock rules of :meth:`requeue_failed`, in
  that transaction, so exactly one node runs it again.
- **Browsing** (:meth:`browse`, the Files and Review pages) is a read: one page of rows, latest
  change first, and the number matching in all, from one snapshot; ``state="review"`` is the
  done rows in review; ``search`` is a substring of the relative path, case-insensitive for ASCII.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Literal, Protocol

from daemon.errors import JournalUnusable
from daemon.journal.faults import DiskFullWait
from daemon.journal.store import Decision, DecisionRecord, Entry, Fingerprint, State


class JournalBackend(Protocol):
    """What the daemon needs of a journal; see the module docstring for the failure rules."""

    #: Local directory-anchored path: state kept beside it (stage timings, roots) stays per node.
    path: Path
    on_disk_full: Callable[[DiskFullWait], None] | None

    @property
    def fault(self) -> JournalUnusable | None:
        """Set once any statement found the journal unusable, from whichever thread met it."""

    def close(self) -> None: ...
    def get(self, folder: str, path: str) -> Entry | None: ...
    def get_by_id(self, entry_id: int) -> Entry | None: ...

    # arrivals
    def is_settled(
        self, folder: str, path: str, fingerprint: Fingerprint, *, redo_done: bool = False
    ) -> bool: ...
    def offer(self, folder: str, path: str, fingerprint: Fingerprint, *, redo_done: bool = False) -> bool: ...

    # work
    def reset_running(self) -> list[Entry]: ...
    def excuse(self, entry_ids: Collection[int]) -> None: ...
    def claim(self, folders: Collection[str], now: float | None = None) -> Entry | None: ...
    def has_due_work(self, folders: Collection[str], now: float | None = None) -> bool: ...
    def unclaim(self, entry_id: int) -> None: ...
    def mark_done(
        self, entry_id: int, output: str | None, confidence: float | None = None, review: bool = False
    ) -> None: ...
    def mark_failed(self, entry_id: int, error_class: str, reason: str) -> None: ...
    def retry_later(
        self, entry_id: int, error_class: str, reason: str, next_attempt: float, *, count_attempt: bool = True
    ) -> None: ...
    def same_output_rivals(self, entry: Entry, output_of: Callable[[str], str]) -> list[Entry]: ...
    def forget(self, entry_id: int) -> None: ...

    # upkeep
    def finished_before(self, cutoff: float, after_id: int = 0, limit: int = 500) -> list[Entry]: ...
    def prune(self, entries: Collection[Entry]) -> int: ...
    def vacuum(self) -> None: ...

    # reports
    def counts(self) -> dict[str, dict[State, int]]: ...
    def backlog(self, folders: Collection[str] | None = None) -> int: ...
    def in_review(self) -> dict[str, int]: ...
    def waiting_for_space(self) -> dict[str, tuple[int, str]]: ...
    def recent_failures(self, limit: int = 10) -> list[Entry]: ...
    def done_since(self, cutoff: float) -> dict[str, int]: ...
    def failed(self, folder: str | None = None, limit: int = 100, offset: int = 0) -> list[Entry]: ...

    # the operator's retry (see "An operator's retry" above)
    def requeue_failed(self, entry_ids: Collection[int]) -> list[int]: ...

    # the console's Files and Review pages (see "An operator's Review decision" above)
    def browse(
        self,
        *,
        folder: str | None = None,
        state: State | Literal["review"] | None = None,
        search: str = "",
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Entry], int]: ...
    def decide(
        self, entry_id: int, decision: Decision, *, output: str | None = None, profile: str | None = None
    ) -> bool: ...
    def decisions(self, entry_id: int | None = None, limit: int = 100) -> list[DecisionRecord]: ...
