"""Sessions shared by a fleet of workers: the transport's side of a cluster backend.

With ``redis_url`` set, every worker of a deployment can serve every session, behind
a balancer with no stickiness (docs/scaling.md).  The sessions stay what they are
without it, objects with a nursery in the worker serving them; this module adds:

* a worker that meets a session id it does not hold restores the session from its
  record (:meth:`Fleet.restore`), so ``initialize`` on one worker, ``tools/call`` on
  another and ``DELETE`` on a third all work;
* the session's GET stream is a :class:`MirrorStream` on every worker: what any
  worker sends on it is numbered and logged by the store and comes back on the bus
  to the worker carrying the stream, in one order for all;
* the events of a worker's own POST streams are logged too, so a client resumes with
  ``Last-Event-ID`` on any worker (:meth:`Fleet.resume`): the log first, then the bus,
  each event once;
* answers to server-to-client requests, cancellations and ``DELETE`` reach the worker
  whose handler they concern; server-wide notifications reach every session and
  every ``subscriptions/listen`` stream;
* the records of the 2026-07-28 tasks this worker runs are kept in the store, so
  ``tasks/get`` is answered on any worker, and ``tasks/cancel`` and ``tasks/update``
  received elsewhere reach this one, which confirms them once its record shows them
  (the rules are in ``transport/tasks.py``).

Without ``redis_url`` none of this is created and the transport's paths are as
before (each hook is one ``is None`` test).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import trio

from ..cluster.backend import (
    Backend,
    BackendUnavailable,
    Replay,
    SessionRecord,
    Signal,
    is_shareable_session_id,
)
from ..protocol import jsonrpc
from ..protocol.errors import INTERNAL_ERROR, INVALID_REQUEST, McpError, ProtocolError
from ..protocol.event_store import EventStore, parse_event_id
from ..protocol.jsonrpc import Envelope
from .streams import Attachment, SseStream

if TYPE_CHECKING:
    from .config import TransportConfig
    from .gate import Gate
    from .session import Session
    from .session_era import SessionEra
    from .stateless_era import StatelessEra

__all__ = ["Fleet", "MirrorStream", "open_fleet"]

logger = logging.getLogger("trio_mcp_http")

#: Events kept per logged stream (as many as the in-memory event store keeps).
MAX_EVENTS_PER_STREAM = 256


def open_fleet(config: TransportConfig, gate: Gate) -> Fleet | None:
    """The fleet ``config.redis_url`` describes; ``None`` when it is unset."""
    if config.redis_url is None:
        return None
    from ..cluster.redis import RedisBackend

    backend = RedisBackend(
        config.redis_url,
        session_ttl=config.session_idle_timeout,
        max_events=MAX_EVENTS_PER_STREAM,
        replayable_streams=config.replayable_streams,
    )
    return Fleet(backend, config, gate)


class MirrorStream(SseStream):
    """A stream fed by the bus: a session's GET stream (number 0) on every worker, or
    another worker's POST stream resumed here.

    Events carry the numbers the store gave them; one already delivered (or replayed)
    is dropped, so a connection sees each event once, whichever path brought it.
    """

    __slots__ = ("_fleet", "_held", "_session")

    def __init__(self, number: int, session: Session, fleet: Fleet, on_change: Callable[[int], None]) -> None:
        super().__init__(
            number,
            store=None,
            buffer_size=fleet.config.stream_buffer_size,
            standalone=number == 0,
            on_change=on_change,
        )
        self._fleet = fleet
        self._session = session
        #: While a resume reads the log: live events, kept until it is read.
        self._held: list[tuple[int, bytes | None]] | None = None

    @property
    def resumable(self) -> bool:
        return True

    def publish(self, message: bytes) -> None:
        """A message for the session's GET stream: the store numbers it and the bus
        brings it back to whichever worker carries the stream."""
        if self.finished or self.number != 0 or self._session.id is None:
            return
        self._fleet.backend.publish(self._session.id, message)

    def deliver(self, seq: int, frame: bytes | None) -> None:
        """An event from the bus (``frame`` ``None``: the stream has ended after ``seq``)."""
        if self._held is not None:
            self._held.append((seq, frame))
            return
        if frame is None:
            if not self.standalone:
                self.finish()
            return
        if seq <= self._seq:
            return
        self._seq = seq
        current = self._current
        if current is not None:
            try:
                current.send.send_nowait(frame)
            except trio.WouldBlock:
                self.detach_connection()  # too slow: it resumes from the log
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._let_go()

    def hold(self) -> None:
        self._held = []

    def resume(self, after: int, replay: Replay | None) -> Attachment | None:
        """Attach a connection that gets the log's events after ``after``, then what the
        bus brought meanwhile (each once), then live events."""
        held, self._held = self._held or [], None
        if replay is None:
            return None
        frames = [frame for _, frame in replay.frames]
        last = replay.frames[-1][0] if replay.frames else after
        finished = replay.finished
        for seq, frame in held:
            if frame is None:
                finished = True
            elif seq > last:
                frames.append(frame)
                last = seq
        self._seq = last
        if finished and not self.standalone:
            self.finished = True
        return self.attach(frames)

    def release(self, attachment: Attachment) -> None:
        super().release(attachment)
        if not self.standalone and self._current is None:
            # A resumed POST stream lives as long as a connection carries it.
            self._fleet.drop_mirror(self._session, self)


class _SharedStore:
    """An event store that also logs each event in the fleet's store."""

    __slots__ = ("_backend", "_local", "_session_id")

    def __init__(self, local: EventStore, backend: Backend, session_id: str) -> None:
        self._local = local
        self._backend = backend
        self._session_id = session_id

    def append(self, stream: int, seq: int, frame: bytes) -> None:
        self._local.append(stream, seq, frame)
        self._backend.append(self._session_id, stream, seq, frame)

    def replay_after(self, stream: int, seq: int) -> list[bytes] | None:
        return self._local.replay_after(stream, seq)

    def forget(self, stream: int) -> None:
        self._local.forget(stream)

    def stored_events(self) -> int:
        return self._local.stored_events()


class Fleet:
    """One worker's membership in a fleet (see the module docstring)."""

    def __init__(self, backend: Backend, config: TransportConfig, gate: Gate) -> None:
        self.backend = backend
        self.config = config
        self.gate = gate
        self._era: SessionEra | None = None
        self._stateless: StatelessEra | None = None
        #: Sessions being restored here: the bus's signals for each, kept (one list per
        #: restore under way) until the restored copy is listed, then applied to it.
        self._restoring: dict[str, list[list[Signal]]] = {}
        #: ``tasks/cancel`` and ``tasks/update`` sent to the worker running the task,
        #: by reply id: where its confirmation goes.
        self._confirmations: dict[str, _Confirmation] = {}

    @property
    def tag(self) -> int:
        return self.backend.tag

    async def run(
        self,
        era: SessionEra,
        stateless: StatelessEra,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        self._era = era
        self._stateless = stateless
        stateless.tasks.join(self)
        await self.backend.run(self, task_status=task_status)

    async def flush(self) -> None:
        """Until every queued write is in the store (the drain waits for this before it
        ends the connections, so clients resume elsewhere from a complete log)."""
        await self.backend.flush()

    def _unavailable(self, exc: BackendUnavailable) -> ProtocolError:
        logger.warning("%s", str(exc))  # a string: a kept record pins no frames
        return self.gate.refusal("the shared session store is unavailable")

    # -- the Receiver: what the bus brings ----------------------------------------------

    def signal(self, session_id: str, signal: Signal) -> None:
        era = self._era
        session = None if era is None else era._sessions.get(session_id)
        if session is None:
            for kept in self._restoring.get(session_id, ()):
                kept.append(signal)
            return
        self._apply(session, signal)

    def _apply(self, session: Session, signal: Signal) -> None:
        kind = signal.kind
        if kind == "event" or kind == "finish":
            if signal.origin == self.tag and signal.stream != 0:
                return  # our own stream's event: delivered locally already
            stream = session.find_stream(signal.stream)
            if isinstance(stream, MirrorStream):
                stream.deliver(signal.seq, signal.frame if kind == "event" else None)
            return
        if signal.origin == self.tag:
            return
        if kind == "take":
            taken = session.find_stream(signal.stream)
            if taken is not None:
                # The newest connection wins, on whichever worker it arrived.
                taken.detach_connection(self.config.retry_ms)
        elif kind == "response":
            parsed = jsonrpc.parse_body(signal.body)
            if isinstance(parsed, Envelope):
                session.deliver_response(parsed, forward=False)
        elif kind == "cancel":
            session.cancel_request(json.loads(signal.body), "client", forward=False)
        elif kind == "state":
            state = json.loads(signal.body)
            session.log_level = state["level"]
            session.subscriptions = set(state["subscriptions"])
        elif kind == "end":
            session.terminate()

    def broadcast(self, method: str, params: dict[str, Any] | None) -> None:
        if self._era is not None:
            self._era.broadcast(method, params)  # the WebSocket sessions held here
        if self._stateless is not None:
            self._stateless.broadcast(method, params)

    def busy_sessions(self) -> Iterable[str]:
        era = self._era
        if era is None:
            return []
        return [sid for sid, session in era._sessions.items() if session.busy]

    def task_signal(self, task_id: str, signal: Signal) -> None:
        if signal.origin == self.tag or self._stateless is None:
            return  # sent from here: about a task this worker did not run
        if signal.kind == "done":
            self._confirmed(signal.body)
            return
        self._stateless.tasks.signalled(task_id, signal.kind, signal.body)

    def _confirmed(self, body: bytes) -> None:
        """The running worker's confirmation of a ``cancel`` or ``update`` (ignored
        unless it was sent from here and is still awaited)."""
        try:
            message = json.loads(body)
            waiting = self._confirmations.get(message["reply"])
            if waiting is not None:
                error = message.get("error")
                waiting.error = error if isinstance(error, dict) else None
                waiting.done.set()
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring a malformed task confirmation: %r", exc)

    def bus_lost(self) -> None:
        era = self._era
        if era is None:
            return
        for session in list(era._sessions.values()):
            for stream in list(session._streams.values()):
                if isinstance(stream, MirrorStream):
                    stream.detach_connection(self.config.retry_ms)

    # -- sessions -----------------------------------------------------------------------

    async def created(self, session: Session) -> None:
        """A new session: its record is stored before its id is given out.  503 when
        the fleet holds ``max_sessions`` or the store does not answer."""
        assert session.id is not None
        record = SessionRecord(
            session.id,
            session.protocol_version,
            session.client_capabilities,
            session.client_info,
            session.owner,
            session.log_level,
        )
        refusal: ProtocolError | None
        try:
            stored = await self.backend.create_session(record, self.config.max_sessions)
        except BackendUnavailable as exc:
            refusal = self._unavailable(exc)
        else:
            refusal = None if stored else self.gate.refusal("too many sessions")
        if refusal is not None:
            session.terminate()
            await session.close_protocol()
            raise refusal
        session.join(self)

    async def restore(self, era: SessionEra, session_id: str) -> None:
        """Bring a session another worker created into this one, from its record
        (nothing when there is no such session: the caller answers 404)."""
        if not is_shareable_session_id(session_id):
            return
        # What the bus brings for the session from before the record is read until the
        # restored copy is listed (a DELETE, a new log level on another worker) would
        # find no session here: it is kept, and applied once the copy is listed.
        kept: list[Signal] = []
        self._restoring.setdefault(session_id, []).append(kept)
        try:
            await self._restore(era, session_id, kept)
        finally:
            restores = self._restoring[session_id]
            restores.remove(kept)
            if not restores:
                del self._restoring[session_id]

    async def _restore(self, era: SessionEra, session_id: str, kept: list[Signal]) -> None:
        try:
            record = await self.backend.load_session(session_id)
        except BackendUnavailable as exc:
            raise self._unavailable(exc) from exc
        if record is None or session_id in era._sessions:
            return
        from .session import Session

        era._make_room()
        session = Session(
            era.server,
            era.config,
            era.gate,
            session_id,
            on_end=era._forget,
            protocol_version=record.protocol_version,
            client_capabilities=record.client_capabilities,
            client_info=record.client_info,
            owner=record.owner,
        )
        session.log_level = record.log_level
        session.subscriptions = set(record.subscriptions)
        session.join(self)
        assert era._nursery is not None
        # Running before it is listed: a concurrent request for the same session, which
        # skips the restore once the id is listed, must find it able to start handlers.
        await session.launch(era._nursery)
        if session_id in era._sessions:
            session.terminate()  # a concurrent request restored it first: that copy serves
            return
        era._sessions[session_id] = session
        # Published after the record was read (or just before, and then already in it):
        # applied in the bus's order, an `end` terminates the copy (the caller's lookup
        # then answers 404).
        for signal in kept:
            if session.terminated:
                break
            self._apply(session, signal)

    async def delete(self, session: Session) -> None:
        """``DELETE``: the record and the logs go, and every worker ends its copy."""
        assert session.id is not None
        try:
            await self.backend.delete_session(session.id)
        except BackendUnavailable as exc:
            raise self._unavailable(exc) from exc

    async def save_state(self, session: Session) -> None:
        """The session's log level or subscriptions changed (in a handler)."""
        assert session.id is not None
        try:
            await self.backend.save_state(session.id, session.log_level, session.subscriptions)
        except BackendUnavailable as exc:
            logger.warning("%s", str(exc))
            raise McpError(INTERNAL_ERROR, "The shared session store is unavailable; retry later") from exc

    def forgotten(self, session: Session) -> None:
        if session.id is not None:
            self.backend.forget(session.id)

    def touch(self, session: Session) -> None:
        if session.id is not None:
            self.backend.touch(session.id)

    def store(self, session: Session, local: EventStore) -> EventStore:
        assert session.id is not None
        return _SharedStore(local, self.backend, session.id)

    # -- streams ------------------------------------------------------------------------

    def standalone(self, session: Session, on_change: Callable[[int], None]) -> MirrorStream:
        return MirrorStream(0, session, self, on_change)

    def carrying(self, session: Session, number: int) -> None:
        """A connection now carries stream ``number`` here: any other worker's lets go."""
        if not self.backend.bus_ready:
            raise self.gate.refusal("the shared session store is unavailable")
        assert session.id is not None
        if number == 0:
            self.backend.mark_get(session.id)
        self.backend.send(session.id, Signal("take", self.tag, number))

    def finished(self, session: Session, stream: SseStream) -> None:
        """One of this worker's POST streams has ended: logged, for resumes elsewhere."""
        if session.id is not None and stream.resumable and not isinstance(stream, MirrorStream):
            self.backend.finish(session.id, stream.number, stream._seq)

    def drop_mirror(self, session: Session, mirror: MirrorStream) -> None:
        if session._streams.get(mirror.number) is mirror:
            del session._streams[mirror.number]

    async def resume(self, session: Session, last_event_id: str) -> Attachment:
        """Resume a stream after ``last_event_id`` (MCP 2025-11-25, Transports,
        Resumability and Redelivery), wherever it was carried before."""
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            raise _cannot_resume(last_event_id)
        number, after = parsed
        assert session.id is not None
        stream = session.find_stream(number)
        if stream is not None and not isinstance(stream, MirrorStream):
            # One of this worker's own streams: its local store has every event.
            frames = stream.replay_after(after)
            if frames is None:
                raise _cannot_resume(last_event_id)
            self.carrying(session, number)
            return stream.attach(frames)
        if not self.backend.bus_ready:
            raise self.gate.refusal("the shared session store is unavailable")
        if stream is None:
            if number == 0:
                stream = session.standalone()
            else:
                stream = MirrorStream(number, session, self, session._connection_change)
                session._streams[number] = stream
        assert isinstance(stream, MirrorStream)
        stream.hold()
        replay: Replay | None = None
        try:
            replay = await self.backend.replay(session.id, number, after)
        except BackendUnavailable as exc:
            raise self._unavailable(exc) from exc
        finally:
            attachment = stream.resume(after, replay)
        if attachment is None:
            if number != 0 and stream.attached is False:
                self.drop_mirror(session, stream)
            raise _cannot_resume(last_event_id)
        self.carrying(session, number)
        return attachment

    # -- what handlers send -------------------------------------------------------------

    def forward_response(self, session: Session, response: Envelope) -> None:
        """A client's answer to a request this worker did not send: to the worker that did."""
        if session.id is None or response.id is None:
            return
        if response.error is not None:
            error = response.error
            body = jsonrpc.encode_error(response.id, error.code, error.message, error.data)
        else:
            body = jsonrpc.encode_result(response.id, response.result)
        self.backend.send(session.id, Signal("response", self.tag, body=body))

    def forward_cancel(self, session: Session, request_id: Any) -> None:
        """A cancellation of a request not running here: to the worker running it."""
        if session.id is not None:
            self.backend.send(session.id, Signal("cancel", self.tag, body=json.dumps(request_id).encode()))

    def notify_all(self, method: str, params: dict[str, Any] | None) -> None:
        """A server-wide notification, for every session and listen stream of the fleet."""
        self.backend.broadcast(method, params)

    # -- tasks (TaskHooks) --------------------------------------------------------------

    async def store_task(self, task_id: str, record: bytes, ttl_ms: int) -> None:
        try:
            await self.backend.store_task(task_id, record, ttl_ms)
        except BackendUnavailable as exc:
            logger.warning("%s", str(exc))
            raise McpError(INTERNAL_ERROR, "The shared session store is unavailable; retry later") from exc

    def save_task(self, task_id: str, record: bytes, ttl_ms: int) -> int:
        return self.backend.save_task(task_id, record, ttl_ms)

    async def task_written(self, position: int) -> None:
        try:
            await self.backend.written(position)
        except BackendUnavailable as exc:
            raise self._unavailable(exc) from exc

    def delete_task(self, task_id: str) -> None:
        self.backend.delete_task(task_id)

    async def load_task(self, task_id: str) -> bytes | None:
        try:
            return await self.backend.load_task(task_id)
        except BackendUnavailable as exc:
            raise self._unavailable(exc) from exc

    async def send_task(self, task_id: str, kind: str, message: dict[str, Any]) -> dict[str, Any] | None:
        if not self.backend.bus_ready:
            # The confirmation could not be heard: refused rather than left unknown.
            raise self.gate.refusal("the shared session store is unavailable")
        reply = secrets.token_urlsafe(12)
        waiting = self._confirmations[reply] = _Confirmation()
        try:
            body = jsonrpc.to_json({**message, "reply": reply})
            self.backend.send_task(task_id, Signal(kind, self.tag, body=body))
            # A bus round trip and the running worker's write: milliseconds, unless that
            # worker is gone (crashed) or the store does not answer.
            with trio.move_on_after(self.backend.timeout):
                await waiting.done.wait()
        finally:
            del self._confirmations[reply]
        if not waiting.done.is_set():
            logger.warning("task %s: the worker running it did not confirm a %s in time", task_id, kind)
            raise self.gate.refusal("the worker running the task did not answer")
        return waiting.error

    def confirm_task(self, task_id: str, reply: str, error: dict[str, Any] | None) -> None:
        body = jsonrpc.to_json({"reply": reply, "error": error})
        self.backend.send_task(task_id, Signal("done", self.tag, body=body))


class _Confirmation:
    """A ``tasks/cancel`` or ``tasks/update`` awaiting the running worker's ``done``."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        #: The error the running worker answered it with, if it refused it.
        self.error: dict[str, Any] | None = None


def _cannot_resume(last_event_id: str) -> ProtocolError:
    return ProtocolError(
        400,
        INVALID_REQUEST,
        f"Bad Request: cannot resume after event {last_event_id!r}: unknown or no longer stored",
    )
