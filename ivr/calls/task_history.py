"""Every step of a task in the interaction history of its customer (the CRM history the agent sees).

``TaskHistory`` is a ``TaskBook`` listener (``book.listeners.append(TaskHistory(crm.record_interaction))``):
for a task whose customer number is known, each step (requested, offered to an agent, connecting, done /
failed / expired / cancelled, a second request that updated it, back at its place after a restart) becomes
one ``Interaction`` of kind ``task`` in that number's history, with the agent, the attempt and the reason.
Repeat-caller and first-contact-resolution rules ignore that kind (``ivr.crm.rules``): a callback is not a
second call from the customer.

The listener runs inside the book's transition, on the event loop: it never waits for the CRM and never
raises. The entries go to the CRM one at a time, in order, from one background task (bounded: when the CRM
is stuck and ``max_pending`` entries wait, the oldest is dropped and counted). A failed write is logged and
counted, never retried (``GuardedLookup.record_interaction`` already time-boxes it and never raises).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from ..crm.model import Interaction, InteractionKind, clean_text
from ..tasks import Task, TaskState

log = logging.getLogger(__name__)

#: ``record_interaction(e164, interaction)`` of a CRM (``GuardedLookup``, ``SqliteCrm``...)
Recorder = Callable[[str | None, Interaction], Awaitable[None]]


def task_interactions(before: Task | None, after: Task) -> list[Interaction]:
    """The history entries for one change the book reports (pure): one per new transition, one for a new
    task; none when the number is unknown or nothing moved (a task reloaded as it was)."""
    if not after.number:
        return []
    if before is None:
        if after.history:       # not a new task (a new one has no transition yet)
            return []
        origin = after.source.partition(":")[0]
        return [_entry(after, after.created_at, TaskState.WAITING, "requested" + (f" ({origin})" if origin else ""),
                       None, after.attempts + 1)]
    # the attempt a step belongs to: the one it used up (a customer busy / no answer), else the one in play
    attempt = after.attempts if after.attempts > before.attempts else after.attempts + 1
    return [_entry(after, t.at, t.to_state, t.reason, t.agent_id or before.agent_id, attempt)
            for t in after.history[len(before.history):]]


def _entry(task: Task, at: float, state: TaskState, reason: str, agent: str | None, attempt: int) -> Interaction:
    line = f"{task.kind.value} {state.value}"
    if not state.open and task.outcome and task.outcome != state.value:
        line += f" ({task.outcome})"
    line += f", attempt {attempt} of {task.max_attempts}"
    cid = task.customer.get("customer_id") if task.customer else None
    return Interaction(
        at=at, call_id=task.id, queue=task.queue, wait_seconds=max(0.0, at - task.position_time), agent_id=agent,
        outcome=line, customer_id=cid if isinstance(cid, str) and cid else None, caller=task.number,
        kind=InteractionKind.TASK, state=state.value, attempt=attempt, detail=clean_text(reason))


class TaskHistory:
    """A ``TaskBook`` listener writing each step of a task to its customer's CRM history (module doc)."""

    def __init__(self, record: Recorder, *, max_pending: int = 1000) -> None:
        self._record = record
        self._pending: deque[tuple[str, Interaction]] = deque()
        self._max = max(1, max_pending)
        self._worker: asyncio.Task[None] | None = None
        self.recorded = 0
        self.dropped = 0
        self.failed = 0

    def __call__(self, before: Task | None, after: Task) -> None:
        try:
            entries = task_interactions(before, after)
        except Exception:                      # never break the book's transition
            log.exception("task history: could not make the history entry of %s", after.id)
            return
        if not entries:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:                   # no event loop (a script, a sync test): nowhere to write from
            self.dropped += len(entries)
            log.debug("task history: no event loop, step of %s not recorded", after.id)
            return
        for e in entries:
            if len(self._pending) >= self._max:
                self._pending.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    log.warning("task history: the CRM is not keeping up, %d step(s) dropped", self.dropped)
            self._pending.append((after.number or "", e))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain(), name="task-history")

    async def _drain(self) -> None:
        while self._pending:
            number, entry = self._pending.popleft()
            try:
                await self._record(number, entry)
                self.recorded += 1
            except asyncio.CancelledError:
                raise
            except Exception as e:             # noqa: BLE001 - history is best effort
                self.failed += 1
                log.info("task history: could not record a step of %s: %s", entry.call_id, type(e).__name__)

    async def flush(self) -> None:
        """Wait until every queued step is written (tests, shutdown)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    def close(self) -> None:
        """Stop writing (shutdown); what is still queued is dropped."""
        if self._worker is not None:
            self._worker.cancel()
        self._pending.clear()
