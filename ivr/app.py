"""Composition root: config -> ARI client, events websocket, dispatcher, call sessions; graceful shutdown.

The app owns the mapping channel id -> call session. Asterisk is the source of truth: after every
(re)connect the app reconciles its sessions with `GET /channels` (sessions whose channel is gone are
ended; channels in our Stasis app that no session owns are hung up, so nothing leaks).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import signal
import tempfile
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from datetime import datetime

from .admission import Admission, AdmissionPolicy
from .ari import (
    BULK_LISTS,
    AriClient,
    AriError,
    Channel,
    ChannelDestroyed,
    Connected,
    Disconnected,
    Dispatcher,
    Event,
    EventStream,
    StasisEnd,
    StasisStart,
)
from .calls.acd_service import AcdDeps, AcdService
from .calls.adoption import AdoptedCall, AdoptedDeps
from .calls.clock import Clock, LoopClock
from .calls.flow_session import FlowSession, utc_now
from .calls.flows import FlowRegistry
from .calls.gate import AdmissionGate
from .calls.janitor import Claims, Janitor, JanitorDeps
from .calls.live_config import live_config_for
from .calls.saved_state import QueueState
from .calls.session import CallSession
from .calls.session_deps import SessionDeps
from .calls.task_book import TaskBook
from .calls.task_history import TaskHistory
from .calls.task_legs import Message, TaskLegDeps, TaskLegs
from .calls.transfer import Target, TransferDeps, TransferLegs, resolve_target
from .config import Config
from .flow.model import Destinations
from .metrics import Metrics, QueueSnapshot
from .audit import SqliteAuditLog
from .users import Accounts, AuthPolicy, SqliteUserStore
from .settings import SqliteConfigStore, live_definitions
from .storage import Storage
from .tasks import SqliteTaskStore, Task
from .tasks.policy import CallbackPolicy, WebCallbackPolicy
from .voicemail import RetentionSweeper, VoicemailPolicy
from .web.deps import WebDeps
from .web.phone import asterisk_ws_url, phones_for
from .web.server import WebServer

log = logging.getLogger(__name__)

SessionFactory = Callable[["App", StasisStart], CallSession | None]

# Only the event types some handler uses are requested from Asterisk: it pays CPU for every event it
# sends (and we pay to parse it). Not needed: ChannelStateChange, PlaybackStarted, Dial, bridge
# enter/leave, ChannelHangupRequest (StasisEnd / ChannelDestroyed say the same, once), ChannelVarset.
EVENT_TYPES = ["StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelDtmfReceived", "PlaybackFinished",
               "RecordingFinished", "RecordingFailed", "EndpointStateChange", "ContactStatusChange",
               # arrives before the playback ends and the StasisEnd of a channel that hangs up: a caller
               # who hung up during a prompt must not go on in the flow (e.g. be queued and ring an agent)
               "ChannelHangupRequest"]


def default_session_factory(app: App, ev: StasisStart) -> CallSession | None:
    if ev.args[:1] == ("inbound",) and app.flows is not None:
        chosen = app.flows.flow_for(ev.channel.exten)
        if chosen is not None:
            return FlowSession(app.session_deps, ev.channel, chosen[0], chosen[1], app.wall_clock)
    return None


class StartupError(RuntimeError):
    """The app cannot start with this config (e.g. invalid flows); the message lists every problem."""


class App:
    def __init__(self, cfg: Config, session_factory: SessionFactory | None = None, *,
                 wall_clock: Callable[[], datetime] = utc_now, load_flows: bool = True,
                 clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.wall_clock = wall_clock
        self.clock: Clock = clock or LoopClock()    # the glue's clock and timers (a fake one in component tests)
        self._extra_subscriptions: list[str] = []
        self.ari = AriClient(cfg.ari_url, cfg.ari.user, cfg.ari.password, cfg.ari.app,
                             timeout=cfg.ari.request_timeout)
        self.metrics = Metrics(self)
        self.dispatcher = Dispatcher(self.handle, on_lag=self.metrics.event_lag)
        self.admission = Admission(AdmissionPolicy.from_dict(cfg.admission), time.monotonic, self.active_calls)
        self.ari.on_latency = self._ari_latency
        self.rest_sockets = (self.ari.use_websockets(cfg.ari.rest_websockets, reconnect_min=cfg.ari.reconnect_min,
                                                     reconnect_max=cfg.ari.reconnect_max)
                             if cfg.ari.rest_websockets > 0 else None)
        self.gate = AdmissionGate(self.admission, self.ari, self.metrics)
        self.janitor = Janitor(JanitorDeps(
            ari=self.ari, claims=self._claims, is_ours=self._in_our_app, pending=self.dispatcher.busy,
            report_gone=lambda cid: self.dispatcher.submit(
                ChannelDestroyed(type="ChannelDestroyed", channel=Channel(cid), cause=0)),
            connected=lambda: self.events.connected, on_cleaned=self.metrics.janitor_cleaned))
        self.storage = Storage(cfg.path(cfg.storage.path)) if cfg.storage.path else None
        # who changed what and every login (ivr/audit): in the store's file, or in memory with no storage
        self.audit = SqliteAuditLog(cfg.path(cfg.storage.path) if cfg.storage.path else ":memory:",
                                    wall=self.clock.wall)
        # users, login sessions, API tokens (ivr/users), same file; the config's users seed the first start
        self.accounts = Accounts(SqliteUserStore(cfg.path(cfg.storage.path) if cfg.storage.path else ":memory:"),
                                 self.clock.wall, AuthPolicy.from_dict(cfg.auth))
        for name, password in self.accounts.seed(cfg.users, os.environ):
            # shown once on the console, never logged; only its hash is stored
            print(f"ivr: created user {name} with the generated password {password} (shown once)", flush=True)
        self.voicemail_retention = (RetentionSweeper(VoicemailPolicy.from_dict(cfg.voicemail), self.storage, self.ari)
                                    if self.storage is not None else None)
        self.crm = None
        if cfg.crm and cfg.crm.get("backend", "sqlite") != "none":
            from .crm.factory import crm_from_config
            self.crm = crm_from_config(dict(cfg.crm), base_dir=cfg.base_dir, recorder=self.metrics)
            self.metrics.declare_crm_backend(self.crm.backend_name)
        self.contact_quality = None     # first-contact resolution / repeat callers for /metrics
        if self.crm is not None:
            from .crm.factory import contact_quality_from_config
            self.contact_quality = contact_quality_from_config(dict(cfg.crm), self.crm,
                                                               self.metrics.contact_quality)
        self.routing = None
        if self.crm is not None and cfg.routing:
            from .crm.rules import routing_from_dict
            self.routing = routing_from_dict(dict(cfg.routing))
        self.transfer_legs = TransferLegs()     # a flow's transfer legs, by leg id (ivr/calls/transfer.py)
        # agents and queues: the file seeds the store, the store's definitions win (docs/acd.md)
        self.config_store = SqliteConfigStore(cfg.path(cfg.storage.path)) if cfg.storage.path else None
        agents, queues = live_definitions(self.config_store, cfg.agents, cfg.queues, self.clock.wall())
        self.acd: AcdService | None = None
        if queues:     # no queue at start: no ACD (POST /api/queues answers 503 acd-disabled)
            self.acd = AcdService(AcdDeps(
                ari=self.ari, submit=self.dispatcher.submit, metrics=self.metrics, queues=tuple(queues),
                agents=tuple(agents), options=dict(cfg.acd), store=self.storage, clock=self.clock,
                subscribe=self.add_subscription, has_session=lambda cid: cid in self.sessions,
                adopted_session=self._adopted_session))
            self.acd.live_config = live_config_for(self.acd, cfg, self.config_store, agents, self._queue_users,
                                                   self._queue_known)
        self.task_book: TaskBook | None = None   # callbacks, voicemails, web requests (ivr/calls/task_book.py)
        self.task_history: TaskHistory | None = None    # each task step in the customer's CRM history
        self.task_legs: TaskLegs | None = None
        if self.acd is not None and self.storage is not None:
            self._start_tasks(cfg)
        self.flows: FlowRegistry | None = None
        if load_flows:
            queues = set(self.acd.router.queue_names()) if self.acd is not None else None
            self.flows = FlowRegistry(cfg.path(cfg.flows.dir), dict(cfg.flows.routes), cfg.flows.default,
                                      known_queues=queues, known_destinations=Destinations(
                                          *cfg.transfer_destinations()))
            result = self.flows.reload()
            if not result.ok:
                raise StartupError("invalid flows, not starting:\n  " + "\n  ".join(result.errors))
        self.events = EventStream(self.ari, self.dispatcher.submit, subscriptions=self.subscriptions,
                                  event_types=EVENT_TYPES, reconnect_min=cfg.ari.reconnect_min,
                                  reconnect_max=cfg.ari.reconnect_max, before_subscribe=self._push_phones)
        self.session_factory = session_factory or default_session_factory
        self.sessions: dict[str, CallSession] = {}
        self.recent_calls: deque[CallSession] = deque(maxlen=200)   # for the admin API and tests
        self.calls_started = 0
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self.session_deps = self._session_deps()
        self.web = WebServer(WebDeps(   # admin API, metrics, agent page, wallboard (started in run())
            http=cfg.http, redacted_config=cfg.redacted, ari_connected=self.ari_connected,
            render_metrics=self.metrics.render, tasks_waiting=self.metrics.tasks.waiting_by_queue,
            sessions=self.sessions, acd=self.acd, flows=self.flows, records=self.storage,
            voicemails=self.storage, recordings=self.ari if self.storage is not None else None,
            task_book=self.task_book, task_legs=self.task_legs, web_callbacks=cfg.web_callbacks, crm=self.crm,
            audit=self.audit, accounts=self.accounts,
            phone_of=phones_for(cfg, self.acd.live_config if self.acd is not None else None),
            phone_upstream=asterisk_ws_url(cfg)))

    def _start_tasks(self, cfg: Config) -> None:
        acd = self.acd
        assert acd is not None
        policy = CallbackPolicy.from_dict(cfg.callbacks)
        self.task_book = TaskBook(SqliteTaskStore(cfg.path(cfg.storage.path)), policy, wall_clock=self.clock.wall,
                                  router_clock=self.clock.now)
        self.task_book.listeners.append(self.metrics.tasks.on_change)     # ivr_tasks_* (ivr/task_metrics.py)
        if self.crm is not None:
            self.task_history = TaskHistory(self.crm.record_interaction)
            self.task_book.listeners.append(self.task_history)
        self.metrics.tasks.set_source(self.task_book.open_tasks)
        trunks = cfg.trunks

        def dial(number: str) -> Target | None:
            return resolve_target(number, external=True, trunk=policy.trunk, extensions={}, phones=(),
                                  trunks=trunks)
        self.task_legs = TaskLegs(TaskLegDeps(
            ari=self.ari, book=self.task_book, router=acd.router, execute=acd.execute,
            transfer=TransferDeps(self.ari, self.transfer_legs, self.dispatcher.submit, self.clock), dial=dial,
            submit=self.dispatcher.submit, policy=policy, notify=acd.notify, voicemail=self._message_of,
            clock=self.clock))
        acd.tasks = self.task_legs
        self.task_book.start()

    def _queue_users(self, name: str) -> dict[str, list[str]]:
        """Who else names queue ``name`` (it cannot be removed then): flows, config sections, open tasks."""
        cfg = self.cfg
        users = {"flows": self.flows.queue_users(name) if self.flows is not None else [],
                 "config": [f"voicemail.queues.{m}" for m, q in VoicemailPolicy.from_dict(cfg.voicemail).queues.items()
                            if q == name] + [f"web_callbacks.topics.{t}" for t, q in
                                             WebCallbackPolicy.from_dict(cfg.web_callbacks).topics.items() if q == name]}
        if self.task_book is not None:
            users["tasks"] = sorted(t.id for t in self.task_book.open_tasks() if t.queue == name)
        return users

    async def _push_phones(self) -> None:
        """On every ARI connect, before subscribing: the phones of agents added through the API (Asterisk
        forgets them when it restarts; their endpoints must exist to be subscribed to)."""
        if self.acd is not None and self.acd.live_config is not None:
            await self.acd.live_config.push_phones()

    def _queue_known(self, name: str, known: bool) -> None:
        """A queue added / removed at run time: flows may name it / no longer."""
        if self.flows is not None and self.flows.known_queues is not None:
            (self.flows.known_queues.add if known else self.flows.known_queues.discard)(name)

    def _adopted_session(self, channel: Channel, state: QueueState | None) -> AdoptedCall:
        """The session of a caller taken over after a restart, registered before any await (its hang-up
        must find it)."""
        acd = self.acd
        session = AdoptedCall(AdoptedDeps(self.ari, self.dispatcher.submit,
                                          acd.caller_gone if acd is not None else None, self.clock), channel, state)
        self.sessions[channel.id] = session
        return session

    def _session_deps(self) -> SessionDeps:
        cfg = self.cfg
        return SessionDeps(
            ari=self.ari, submit=self.dispatcher.submit, metrics=self.metrics, crm=self.crm, routing=self.routing,
            storage=self.storage, acd=self.acd, task_book=self.task_book, task_legs=self.task_legs,
            transfer_legs=self.transfer_legs, extensions=cfg.extensions,
            phones=tuple(a.endpoint for a in cfg.agent_sip()), trunks=cfg.trunks,
            voicemail_queues={str(k): str(v) for k, v in dict((cfg.voicemail or {}).get("queues") or {}).items()},
            region=str((cfg.crm or {}).get("default_region", "GB")), clock=self.clock)

    def _message_of(self, task: Task) -> Message | None:
        """The voicemail a voicemail task is about (its source is ``voicemail:<id>``)."""
        kind, _, ident = task.source.partition(":")
        if kind != "voicemail" or not ident.isdigit() or self.storage is None:
            return None
        row = self.storage.voicemail(int(ident))
        return None if row is None else Message(row["id"], row["recording"], float(row["duration"] or 0))

    # ------------------------------------------------------------------ live state (metrics provider)
    def queue_snapshots(self) -> list[QueueSnapshot]:
        return self.acd.queue_snapshots() if self.acd is not None else []

    def active_calls(self) -> int:
        return len(self.sessions)

    def active_bridges(self) -> int:
        return self.acd.active_bridges() if self.acd is not None else 0

    def ari_connected(self) -> bool:
        return self.events.connected

    def _ari_latency(self, seconds: float, method: str, path: str) -> None:
        """Admission's ARI latency: the requests of calls, not the bulk lists of the janitor and reconcile
        (GET /channels with hundreds of channels is slow by size, not because Asterisk is saturated)."""
        if not (method == "GET" and path in BULK_LISTS):
            self.admission.ari_latency(seconds)

    def _claims(self) -> Claims:
        legs, queued, bridges = self.acd.held() if self.acd is not None else (frozenset(),) * 3
        if self.task_legs is not None:
            legs = legs | self.task_legs.legs()
        return Claims(sessions=frozenset(self.sessions), legs=legs | self.transfer_legs.legs(), queued=queued,
                      bridges=bridges | self.transfer_legs.bridges())

    def subscriptions(self) -> list[str]:
        """Event sources re-applied on every (re)connect (e.g. agent endpoints for presence)."""
        return list(self._extra_subscriptions)

    def add_subscription(self, source: str) -> None:
        if source not in self._extra_subscriptions:
            self._extra_subscriptions.append(source)

    # ------------------------------------------------------------------------------------- events
    async def handle(self, ev: Event) -> None:
        if (routed := self.transfer_legs.route(ev)) is not None:
            self.dispatcher.submit(routed)     # a transfer leg: handled in its caller's order
        elif isinstance(ev, StasisStart):
            await self._on_stasis_start(ev)
        elif isinstance(ev, (StasisEnd, ChannelDestroyed)):
            s = self.sessions.pop(ev.channel.id, None)
            if s is not None:
                await s.ended()
                self.recent_calls.append(s)
            elif self.task_legs is not None and await self.task_legs.on_event(ev):
                pass
            elif self.acd is not None:
                await self.acd.on_channel_gone(ev)
        elif isinstance(ev, Connected):
            if ev.reconnect:
                self.metrics.ari_reconnected()
            await self.gate.on_connect()
            if self.acd is not None:
                await self.acd.reconcile()      # presence first: adopted callers can be offered at once
            await self.reconcile()
            if self.task_legs is not None:
                await self.task_legs.pump()     # tasks waiting in the store take their places
            self.ready.set()
        elif isinstance(ev, Disconnected):
            self.ready.clear()
        elif self.task_legs is not None and await self.task_legs.on_event(ev) or self.acd is not None and await self.acd.on_event(ev):
            pass
        else:
            cid = ev.channel_id
            s = self.sessions.get(cid) if cid else None
            if s is not None:
                await s.on_event(ev)

    async def _on_stasis_start(self, ev: StasisStart) -> None:
        if self.acd is not None and await self.acd.on_stasis_start(ev):
            return   # an agent leg of ours
        if self.task_legs is not None and await self.task_legs.on_stasis_start(ev):
            return   # an agent leg of a task
        if ev.args[:1] == ("inbound",) and (why := self.gate.admit_call()) is not None:
            # saturated: refused before any IVR work; not answered, so the caller gets SIP 503
            log.info("call %s shed (%s)", ev.channel.id, why)
            await self.ari.hangup_quietly(ev.channel.id, reason="congestion")
            return
        session = self.session_factory(self, ev)
        if session is None:
            log.warning("no session for channel %s (args %s): hanging up", ev.channel.id, ev.args)
            await self.ari.hangup_quietly(ev.channel.id)
            return
        self.sessions[ev.channel.id] = session
        self.calls_started += 1
        try:
            await session.start()
        except AriError as e:
            # the caller may hang up while we answer: end this call only, never the app
            log.info("call %s: start failed (%s); ending it", ev.channel.id, e)
            self.sessions.pop(ev.channel.id, None)
            await session.ended()
            await self.ari.hangup_quietly(ev.channel.id)

    async def reconcile(self) -> None:
        """Make our state match Asterisk's after a (re)connect."""
        try:
            channels = await self.ari.channels()
        except AriError as e:
            log.warning("reconcile: cannot list channels: %s", e)
            return
        live = {c.id: c for c in channels}
        for cid in [c for c in self.sessions if c not in live]:
            s = self.sessions.pop(cid)
            log.info("reconcile: channel %s is gone; ending its session", cid)
            await s.ended()
        orphans = {c.id for c in channels if c.id not in self.sessions and self._in_our_app(c)
                   and not (self.acd is not None and self.acd.owns_channel(c.id))}
        adopted: set[str] = set()
        if self.acd is not None:
            # after a restart: queued callers and conversations of the previous process are taken over
            adopted = await self.acd.adopt(channels, orphans)
        for cid in sorted(orphans - adopted):
            # a caller mid-IVR: its flow position is not persisted, so the call is ended cleanly
            log.info("reconcile: hanging up orphan channel %s", cid)
            await self.ari.hangup_quietly(cid)
        if adopted:
            await self._end_vanished(adopted)

    async def _end_vanished(self, ids: set[str]) -> None:
        """Channels that hung up while we were adopting them: handle them as if their end was seen."""
        try:
            live = {c.id for c in await self.ari.channels()}
        except AriError:
            return
        for cid in sorted(ids - live):
            await self.handle(ChannelDestroyed(type="ChannelDestroyed", channel=Channel(cid), cause=16))

    def _in_our_app(self, c: Channel) -> bool:
        dp = c.raw.get("dialplan") or {}
        return dp.get("app_name") == "Stasis" and str(dp.get("app_data", "")).split(",")[0] == self.cfg.ari.app

    # ---------------------------------------------------------------------------------- lifecycle
    async def run(self) -> None:
        log.info("ivr starting: ARI %s app=%s", self.cfg.ari_url, self.cfg.ari.app)
        async with self.ari:
            tasks = [asyncio.create_task(self.events.run(), name="ari-events"),
                     asyncio.create_task(self.gate.run(), name="admission"),
                     asyncio.create_task(self.janitor.run(), name="janitor")]
            if self.rest_sockets is not None:
                tasks.append(asyncio.create_task(self.rest_sockets.run(), name="ari-rest-websockets"))
            if self.contact_quality is not None:
                tasks.append(asyncio.create_task(self.contact_quality.run(), name="contact-quality"))
            if self.voicemail_retention is not None and self.voicemail_retention.policy.retention_days:
                tasks.append(asyncio.create_task(self.voicemail_retention.run(), name="voicemail-retention"))
            if self.flows is not None and self.cfg.flows.watch:
                tasks.append(asyncio.create_task(self.flows.watch(), name="flow-watch"))
            if self.web is not None:
                await self.web.start()
            try:
                await self._stopping.wait()
            finally:
                await self.events.stop()
                if self.rest_sockets is not None:
                    self.rest_sockets.stop()
                if self.web is not None:
                    await self.web.stop()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.gate.close()
                await self.dispatcher.close()
                if self.acd is not None:
                    self.acd.close()
                if self.task_legs is not None:
                    self.task_legs.close()
                if self.task_history is not None:
                    self.task_history.close()
                if self.crm is not None:
                    await self.crm.close()
                if self.storage is not None:
                    self.storage.close()
                self.audit.close()
                if self.config_store is not None:
                    self.config_store.close()
                self.accounts.store.close()
        log.info("ivr stopped")

    def stop(self) -> None:
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        if self.flows is not None:
            loop.add_signal_handler(signal.SIGHUP, self.flows.reload)
        if tracemalloc.is_tracing():  # started with `python -X tracemalloc=N` or PYTHONTRACEMALLOC=N
            loop.add_signal_handler(signal.SIGUSR2, dump_tracemalloc_snapshot)


def dump_tracemalloc_snapshot() -> None:
    """Memory debugging: on SIGUSR2, write the allocations tracemalloc sees to
    ``$IVR_TRACEMALLOC_DIR/ivr-<pid>-<n>.tracemalloc`` (default the temp dir); two snapshots compare with
    ``Snapshot.load(b).compare_to(Snapshot.load(a), "traceback")``."""
    directory = os.environ.get("IVR_TRACEMALLOC_DIR") or tempfile.gettempdir()
    path = os.path.join(directory, f"ivr-{os.getpid()}-{next(_snapshot_numbers)}.tracemalloc")
    gc.collect()
    tracemalloc.take_snapshot().dump(path)
    log.warning("tracemalloc snapshot written to %s", path)


_snapshot_numbers = itertools.count(1)
