"""The Redis :class:`~trio_mcp_http.cluster.backend.Backend`, on coredis.

coredis runs on anyio, hence on Trio, with no thread or second event loop, and is
fully typed.  One client per worker: a connection pool for commands, one connection
subscribed to the bus.

Keys (``prefix`` first, ``<sid>`` a session id of the shape we issue, checked before
it is ever used in a name)::

    sessions            sorted set: live session ids, scored by expiry (ms, server clock)
    s:<sid>             hash: the session's record, its log level rank, one field per
                        resource subscription, the GET stream's last sequence number
    e:<sid>:0           stream: events of the session's GET stream (MAXLEN bounded)
    e:<sid>:<n>         stream: events of POST stream <n> (MAXLEN bounded)
    l:<sid>             list: the POST streams with events kept (at most
                        ``replayable_streams``; the oldest is deleted to make room)
    t:<tid>             string: a task's record (JSON), written by the worker running
                        the task; ``<tid>`` a task id of the shape we issue
    tags                string: the counter worker tags are taken from (no TTL)

    channel c:<sid>     the session's bus
    channel bcast       server-wide notifications
    channel tasks       ``tasks/cancel`` and ``tasks/update`` for the worker running
                        the task, and its confirmations (``done``) that they are applied

Every key of a session carries the session's idle timeout (plus the interval at which
activity is written) as its TTL, refreshed on activity, so nothing outlives the
session; the sorted set is trimmed of expired ids whenever a session is created and
holds at most ``max_sessions``.  Each multi-key change is one Lua script, so every
worker sees one order.  The scripts touch keys derived from the session id, which a
Redis Cluster cannot route: use one Redis server (with a replica for failover).  A
task's record carries the task's remaining ttl as its TTL, set again with every write:
it expires with the task.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio
import trio.testing

from ..protocol import jsonrpc, sse
from ..protocol.errors import ConfigError
from ..protocol.event_store import format_event_id
from ..protocol.levels import level_rank
from .backend import BackendUnavailable, Receiver, Replay, SessionRecord, Signal

if TYPE_CHECKING:
    import coredis

__all__ = ["RedisBackend"]

logger = logging.getLogger("trio_mcp_http")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: sessions, s:<sid>.  ARGV: max_sessions, ttl_ms (0: none), sid, field, value, ...
_CREATE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local ttl = tonumber(ARGV[2])
local score = '+inf'
if ttl > 0 then score = now + ttl end
redis.call('ZADD', KEYS[1], score, ARGV[3])
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""
)

# The operations of queued writes, applied by :data:`_BATCH`: each a Lua function of
# its own KEYS and ARGV.

# KEYS: sessions, s:<sid>, e:<sid>:0, l:<sid>.  ARGV: ttl_ms, sid.
_TOUCH = (
    """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local ttl = tonumber(ARGV[1])
if ttl > 0 then
"""
    + _NOW
    + """
  for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
  redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[2])
end
return 1
"""
)

# Number, log and announce one event of a session's GET stream.
_APPEND0 = """
local function append0(hash, key, message, maxlen, ttl, channel, origin)
  local seq = redis.call('HINCRBY', hash, 'seq0', 1)
  redis.call('XADD', key, 'MAXLEN', maxlen, '*', 'q', seq, 'm', message)
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  redis.call('PUBLISH', channel, 'event 0 ' .. seq .. ' ' .. origin .. '\\n' .. message)
  return seq
end
"""

# KEYS: s:<sid>, e:<sid>:0.  ARGV: message, maxlen, ttl_ms, channel, origin.
_PUBLISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return append0(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5])
"""

# KEYS: sessions.  ARGV: prefix, message, maxlen, ttl_ms, filter ('all', 'uri',
# 'rank'), its argument, origin.  Only sessions whose GET stream was ever opened.
_BROADCAST = (
    _NOW
    + """
local prefix = ARGV[1]
local n = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  local hash = prefix .. 's:' .. id
  local ok = redis.call('HEXISTS', hash, 'get') == 1
  if ok and ARGV[5] == 'uri' then ok = redis.call('HEXISTS', hash, 'sub:' .. ARGV[6]) == 1 end
  if ok and ARGV[5] == 'rank' then
    ok = tonumber(redis.call('HGET', hash, 'rank') or '0') <= tonumber(ARGV[6])
  end
  if ok then
    append0(hash, prefix .. 'e:' .. id .. ':0', ARGV[2], ARGV[3], tonumber(ARGV[4]),
            prefix .. 'c:' .. id, ARGV[7])
    n = n + 1
  end
end
return n
"""
)

# KEYS: s:<sid>, e:<sid>:<n>, l:<sid>.  ARGV: n, seq, frame, fin ('0'/'1'), maxlen,
# ttl_ms, replayable streams, the prefix of the session's stream keys, channel, payload.
_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ttl = tonumber(ARGV[6])
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('RPUSH', KEYS[3], ARGV[1])
  while redis.call('LLEN', KEYS[3]) > tonumber(ARGV[7]) do
    redis.call('DEL', ARGV[8] .. redis.call('LPOP', KEYS[3]))
  end
  if ttl > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
end
if ARGV[4] == '1' then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], '*', 'q', ARGV[2], 'fin', '1')
else
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], '*', 'q', ARGV[2], 'f', ARGV[3])
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('PUBLISH', ARGV[9], ARGV[10])
return 1
"""

# KEYS: sessions, s:<sid>, e:<sid>:0, l:<sid>.  ARGV: sid, stream key prefix, channel,
# payload.
_DELETE = """
for _, n in ipairs(redis.call('LRANGE', KEYS[4], 0, -1)) do redis.call('DEL', ARGV[2] .. n) end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

# KEYS: s:<sid>.  ARGV: level, rank, channel, payload, uri, ...
_SAVE_STATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 4) == 'sub:' then redis.call('HDEL', KEYS[1], f) end
end
redis.call('HSET', KEYS[1], 'level', ARGV[1], 'rank', ARGV[2])
for i = 5, #ARGV do redis.call('HSET', KEYS[1], 'sub:' .. ARGV[i], '1') end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

# KEYS: s:<sid>.
_MARK_GET = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'get', '1')
return 1
"""

#: The operations a queued write may be: name -> Lua body (of KEYS and ARGV).
_OPERATIONS = {
    "touch": _TOUCH,
    "publish": _PUBLISH,
    "broadcast": _BROADCAST,
    "append": _APPEND,
    "get": _MARK_GET,
    # KEYS: none.  ARGV: channel, message.
    "pub": "return redis.call('PUBLISH', ARGV[1], ARGV[2])",
    # KEYS: t:<tid>.  ARGV: record, ttl_ms.
    "set": "return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])",
    # KEYS: t:<tid>.
    "del": "return redis.call('DEL', KEYS[1])",
}

# Queued writes, applied in one round trip, in order.  ARGV: for each write its
# operation's name, how many keys and arguments it has, then its arguments; KEYS:
# each write's keys, in the same order.  Each write runs under pcall: one Redis
# refuses (out of memory, a key of the wrong type) is reported in its place in the
# answer (1 for a write applied, else the error) and the others are applied, as
# when each was a call of its own.
_BATCH = (
    _APPEND0
    + "local ops = {}\n"
    + "".join(f"ops['{name}'] = function(KEYS, ARGV)\n{body}\nend\n" for name, body in _OPERATIONS.items())
    + """
local results = {}
local k, a = 1, 1
while a <= #ARGV do
  local op, nkeys, nargs = ops[ARGV[a]], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local keys = {unpack(KEYS, k, k + nkeys - 1)}
  local args = {unpack(ARGV, a + 3, a + 2 + nargs)}
  k = k + nkeys
  a = a + 3 + nargs
  local ok, err = pcall(op, keys, args)
  if ok then
    results[#results + 1] = 1
  elseif type(err) == 'table' and err.err then
    results[#results + 1] = err.err
  else
    results[#results + 1] = tostring(err)
  end
end
return results
"""
)


def _payload(kind: str, origin: int, stream: int = 0, seq: int = 0, body: bytes = b"") -> bytes:
    """A bus message: a header line, then the body as is."""
    return b"%s %d %d %d\n" % (kind.encode(), stream, seq, origin) + body


def _parse_payload(data: bytes) -> Signal | None:
    header, _, body = data.partition(b"\n")
    parts = header.split(b" ")
    if len(parts) != 4:
        return None
    kind, stream, seq, origin = parts[0].decode(), int(parts[1]), int(parts[2]), int(parts[3])
    if kind == "event" and stream == 0:
        # The GET stream's messages are logged unframed (numbered by the store).
        return Signal(kind, origin, stream, seq, sse.event(body, id=format_event_id(0, seq)))
    if kind == "event":
        return Signal(kind, origin, stream, seq, body)
    return Signal(kind, origin, stream, seq, body=body)


#: A queued write: an operation of :data:`_BATCH`, its keys and its arguments.
WriteOp = tuple[str, list[str], list[Any]]


class _Written:
    """One :meth:`RedisBackend.written` waiting for a queued write."""

    __slots__ = ("applied", "done")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.applied = False


#: Worker tags are 1 to 2**21 - 1: a session's server-to-client request ids are
#: ``(tag << 32) + n``, below 2**53, so that a JavaScript client, whose numbers are
#: doubles, answers the very same id.
_TAGS = 2**21 - 1


class RedisBackend:
    """Sessions, event logs and the bus of a fleet of workers in one Redis server.

    ``url``: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` or
    ``unix:///path/to/socket``.  ``session_ttl`` is the idle timeout of sessions
    (``None``: never), ``max_events`` the events kept per stream, ``replayable_streams``
    the POST streams kept per session, ``timeout`` the bound on every Redis call, and
    ``prefix`` the start of every key and channel name (several deployments can share
    one Redis server under different prefixes).

    Queued writes are applied in order by one writer, from a queue of at most
    ``max_queued``: what is queued together goes in one round trip (one script call of
    at most ``max_batch`` writes).  The writer lets the writes of what is running join
    the batch: it waits until this worker has nothing else to run (a quick request has
    then queued all of its writes), at most ``write_linger`` seconds.  A queued write's
    position (what :meth:`save_task` returns) can be awaited with :meth:`written`.

    The worker's :attr:`tag` comes from a counter in Redis (``<prefix>tags``), so no two
    live workers share one (it wraps after 2**21 - 1 workers started).
    """

    def __init__(
        self,
        url: str,
        *,
        session_ttl: float | None,
        max_events: int = 256,
        replayable_streams: int = 32,
        timeout: float = 2.0,
        prefix: str = "trio-mcp:",
        max_queued: int = 10_000,
        max_batch: int = 256,
        write_linger: float = 0.002,
    ) -> None:
        try:
            import coredis
        except ImportError as exc:
            raise ConfigError(
                f"redis_url needs the redis extra: pip install 'trio-mcp-http[redis]' ({exc})"
            ) from exc
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"redis_url must be a redis://, rediss:// or unix:// URL, not {url!r}")
        self._url = url
        self._coredis = coredis
        # Provisional until the counter in Redis gives one (_allocate_tag): no session
        # joins the fleet with it (see _ensure_tag).
        self.tag = secrets.randbelow(_TAGS) + 1
        self.tag_allocated = False
        self._tag_lock = trio.Lock()
        self.timeout = timeout
        self.prefix = prefix
        #: Activity is written at most this often per session.
        self.touch_interval = 5.0 if session_ttl is None else min(5.0, session_ttl / 4)
        # The last activity may follow the last write of it by up to touch_interval: the
        # keys live that much longer than the idle timeout, so no worker's copy of a
        # session outlives its record (served there, 404 everywhere else).
        self._ttl_ms = 0 if session_ttl is None else max(1, round((session_ttl + self.touch_interval) * 1000))
        self.max_events = max_events
        self.replayable_streams = replayable_streams
        self._client: coredis.Redis[bytes] | None = None
        self._scripts: dict[str, Any] = {}
        self._touched: dict[str, float] = {}
        self._queue_in, self._queue_out = trio.open_memory_channel[WriteOp](max_queued)
        self.max_batch = max_batch
        self.write_linger = write_linger
        self._batch: Any = None
        self._queued = 0
        #: Positions of queued writes: the last one given, the last one the writer is
        #: done with (applied or given up), and who waits for which (:meth:`written`).
        self._enqueued = 0
        self._applied = 0
        self._waiting: dict[int, list[_Written]] = {}
        self._drained = trio.Event()
        self._drained.set()
        self._bus = False
        self.dropped_writes = 0

    # -- names --------------------------------------------------------------------------

    def _key(self, kind: str, session_id: str, stream: int | None = None) -> str:
        base = f"{self.prefix}{kind}:{session_id}"
        return base if stream is None else f"{base}:{stream}"

    @property
    def _sessions_key(self) -> str:
        return f"{self.prefix}sessions"

    def _channel(self, session_id: str) -> str:
        return f"{self.prefix}c:{session_id}"

    @property
    def _tasks_channel(self) -> str:
        return f"{self.prefix}tasks"

    @property
    def _tags_key(self) -> str:
        # The one key with no TTL: a counter, a few bytes, for the deployment's life.
        return f"{self.prefix}tags"

    # -- lifetime -----------------------------------------------------------------------

    @property
    def bus_ready(self) -> bool:
        return self._bus

    async def run(
        self, receiver: Receiver, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        client = self._coredis.Redis.from_url(
            self._url,
            stream_timeout=self.timeout,
            connect_timeout=self.timeout,
            pool_timeout=self.timeout,
            # Bounded retries: a down server is reported, not waited on.
            retry_policy=self._coredis.retry.ConstantRetryPolicy(
                (self._coredis.exceptions.ConnectionError,), retries=1, delay=0.01
            ),
        )
        async with client, trio.open_nursery() as nursery:
            self._client = client
            self._scripts = {
                name: client.register_script(source)
                for name, source in (
                    ("create", _CREATE),
                    ("delete", _DELETE),
                    ("state", _SAVE_STATE),
                )
            }
            self._batch = client.register_script(_BATCH)
            try:
                await self._allocate_tag()
            except BackendUnavailable as exc:
                # The worker starts anyway and serves from memory; its first session
                # (created or restored) allocates the tag before it joins the fleet.
                logger.warning("%s; the worker's tag is allocated once it answers", str(exc))
            nursery.start_soon(self._write_loop)
            nursery.start_soon(self._bus_loop, receiver)
            nursery.start_soon(self._heartbeat, receiver)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._client = None
                self._bus = False
                nursery.cancel_scope.cancel()

    async def _call(self, what: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """One bounded Redis call: its answer, or :class:`BackendUnavailable`."""
        if self._client is None:
            raise BackendUnavailable("the shared session store is not connected")
        try:
            with trio.fail_after(self.timeout):
                return await make()
        except (trio.TooSlowError, self._coredis.exceptions.RedisError, OSError, TimeoutError) as exc:
            raise BackendUnavailable(f"the shared session store did not answer ({what}): {exc!r}") from exc

    def _script(self, name: str, keys: list[str], args: list[Any]) -> Callable[[], Awaitable[Any]]:
        script = self._scripts[name]
        return lambda: script(keys=keys, args=args)

    # -- the worker's tag ---------------------------------------------------------------

    async def _allocate_tag(self) -> None:
        """Take the next tag from the counter in Redis: distinct for every worker started
        (until 2**21 - 1 workers have started since a worker still running)."""
        client = self._client
        if client is None:
            raise BackendUnavailable("the shared session store is not connected")
        async with self._tag_lock:
            if self.tag_allocated:
                return
            n: int = await self._call("tag", lambda: client.incr(self._tags_key))
            self.tag = (n - 1) % _TAGS + 1
            self.tag_allocated = True

    async def _ensure_tag(self) -> None:
        """Before a session joins the fleet here, or a task signal can be sent: the tag
        must be the allocated one (Redis was down when this worker started)."""
        if not self.tag_allocated:
            await self._allocate_tag()

    # -- the writer: queued writes, applied in order ------------------------------------

    def _enqueue(self, op: WriteOp) -> int:
        """Queue ``op``; its position (``-1``: dropped, the queue is full)."""
        try:
            self._queue_in.send_nowait(op)
        except trio.WouldBlock:
            # Redis has been unreachable for a while: memory stays bounded, and what is
            # lost shows as a gap a resume refuses rather than replays.
            self.dropped_writes += 1
            return -1
        if self._queued == 0:
            self._drained = trio.Event()
        self._queued += 1
        self._enqueued += 1
        return self._enqueued

    async def _write_loop(self) -> None:
        receive = self._queue_out
        while True:
            batch = [await receive.receive()]
            # What is running now is about to queue more (a request's answer and the
            # end of its stream after its first event): until this worker has nothing
            # else to run, or write_linger has passed, it joins this round trip.
            with trio.move_on_after(self.write_linger):
                await trio.testing.wait_all_tasks_blocked()
            while len(batch) < self.max_batch:
                try:
                    batch.append(receive.receive_nowait())
                except trio.WouldBlock:
                    break
            applied: list[bool] = []
            try:
                applied = await self._apply(batch)
            finally:
                self._queued -= len(batch)
                first = self._applied + 1
                self._applied += len(batch)
                if self._queued == 0:
                    self._drained.set()
                self._settle(first, applied)

    def _settle(self, first: int, applied: list[bool]) -> None:
        """The writer is done with the positions up to :attr:`_applied` (``applied[i]``:
        whether the write at ``first + i`` is in Redis): tell whoever waits for one."""
        for position in [p for p in self._waiting if p <= self._applied]:
            index = position - first
            ok = 0 <= index < len(applied) and applied[index]
            for waiter in self._waiting.pop(position):
                waiter.applied = ok
                waiter.done.set()

    async def written(self, position: int) -> None:
        """Until the queued write at ``position`` is in Redis (at once for ``0``, or a
        write the writer was done with before; bounded).  Raises
        :class:`BackendUnavailable` when it was dropped or Redis refused it, or when it
        is not applied within :attr:`timeout`."""
        if position < 0:
            raise BackendUnavailable("the shared session store is unavailable (a write was dropped)")
        if position <= self._applied:
            await trio.lowlevel.checkpoint()
            return
        waiter = _Written()
        self._waiting.setdefault(position, []).append(waiter)
        with trio.move_on_after(self.timeout):
            await waiter.done.wait()
        if not waiter.done.is_set():
            waiters = self._waiting.get(position, [])
            if waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiting[position]
            raise BackendUnavailable("the shared session store did not apply a write in time")
        if not waiter.applied:
            raise BackendUnavailable("the shared session store did not apply a write")

    async def _apply(self, batch: list[WriteOp]) -> list[bool]:
        """One round trip for ``batch``, in order; a write Redis refuses is dropped (the
        whole batch when Redis does not answer), the others are applied.  Whether each
        write was applied."""
        keys: list[str] = []
        args: list[Any] = []
        for name, op_keys, op_args in batch:
            keys += op_keys
            args += [name, len(op_keys), len(op_args), *op_args]
        script = self._batch
        try:
            results = await self._call("write", lambda: script(keys=keys, args=args))
        except BackendUnavailable as exc:
            self.dropped_writes += len(batch)
            logger.warning("%s; %d queued writes are dropped", str(exc), len(batch))
            return [False] * len(batch)
        applied = []
        for (name, _, _), result in zip(batch, results, strict=False):
            applied.append(result == 1)
            if result != 1:
                self.dropped_writes += 1
                reason = result.decode(errors="replace") if isinstance(result, bytes) else repr(result)
                logger.warning("the shared session store refused a write (%s): %s; dropped", name, reason)
        return applied

    async def flush(self) -> None:
        await self._drained.wait()

    async def _heartbeat(self, receiver: Receiver) -> None:
        """Sessions busy here (a stream open, a handler running) stay alive fleet-wide
        even when nothing new happens on them."""
        while True:
            await trio.sleep(self.touch_interval)
            for session_id in list(receiver.busy_sessions()):
                self.touch(session_id, force=True)

    # -- the bus ------------------------------------------------------------------------

    async def _bus_loop(self, receiver: Receiver) -> None:
        assert self._client is not None
        delay = 0.05
        pattern = f"{self.prefix}c:*"
        broadcasts = f"{self.prefix}bcast"
        tasks = self._tasks_channel
        while True:
            connected = False
            try:
                pubsub = self._client.pubsub(
                    retry_policy=self._coredis.retry.NoRetryPolicy(),
                    ignore_subscribe_messages=True,
                    subscription_timeout=self.timeout,
                    max_idle_seconds=max(1.0, self.timeout),
                )
                async with pubsub:
                    with trio.fail_after(self.timeout):
                        await pubsub.psubscribe(pattern)
                        await pubsub.subscribe(broadcasts, tasks)
                    connected = self._bus = True
                    delay = 0.05
                    async for message in pubsub:
                        self._dispatch(receiver, message, broadcasts)
            except (trio.TooSlowError, self._coredis.exceptions.RedisError, OSError, TimeoutError) as exc:
                logger.debug("bus connection failed: %r", exc)
            except BaseExceptionGroup as group:
                # coredis runs its reader in a task group of its own, and its clean-up
                # after a cancellation can fail on the connection the cancellation
                # closed: when cancelled, the cancellation is what counts.
                cancelled, failures = group.split(trio.Cancelled)
                if cancelled is not None:
                    raise cancelled from None
                logger.debug("bus connection failed: %r", failures)
            finally:
                self._bus = False
            if connected:
                logger.warning("lost the shared session store's bus; reconnecting")
                receiver.bus_lost()
            await trio.sleep(delay)
            delay = min(1.0, delay * 2)

    def _dispatch(self, receiver: Receiver, message: Any, broadcasts: str) -> None:
        if message.get("type") not in ("message", "pmessage"):
            return
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        data = message["data"]
        data = data if isinstance(data, bytes) else str(data).encode()
        try:
            if channel == broadcasts:
                body = json.loads(data)
                receiver.broadcast(body["method"], body.get("params"))
                return
            if channel == self._tasks_channel:
                task_id, _, rest = data.partition(b"\n")
                signal = _parse_payload(rest)
                if signal is not None:
                    receiver.task_signal(task_id.decode(), signal)
                return
            session_id = channel.removeprefix(f"{self.prefix}c:")
            signal = _parse_payload(data)
            if signal is not None:
                receiver.signal(session_id, signal)
        except Exception:
            # One malformed message (another deployment's, under the same prefix) must
            # not end the bus for every session.
            logger.exception("ignoring a malformed bus message on %s", channel)

    # -- sessions -----------------------------------------------------------------------

    async def create_session(self, record: SessionRecord, max_sessions: int) -> bool:
        fields: list[Any] = [
            "v",
            record.protocol_version,
            "caps",
            json.dumps(record.client_capabilities),
            "info",
            json.dumps(record.client_info),
            "owner",
            json.dumps(record.owner),
            "level",
            record.log_level,
            "rank",
            level_rank(record.log_level),
        ]
        await self._ensure_tag()
        keys = [self._sessions_key, self._key("s", record.session_id)]
        args = [max_sessions, self._ttl_ms, record.session_id, *fields]
        created = await self._call("create", self._script("create", keys, args))
        if created:
            self._touched[record.session_id] = trio.current_time()
        return bool(created)

    async def load_session(self, session_id: str) -> SessionRecord | None:
        client = self._client
        if client is None:
            raise BackendUnavailable("the shared session store is not connected")
        await self._ensure_tag()
        raw: dict[bytes, bytes] = await self._call("load", lambda: client.hgetall(self._key("s", session_id)))
        if not raw or b"v" not in raw:
            return None
        fields = {k.decode(): v for k, v in raw.items()}
        owner = json.loads(fields.get("owner", b"null"))
        return SessionRecord(
            session_id=session_id,
            protocol_version=fields["v"].decode(),
            client_capabilities=json.loads(fields.get("caps", b"{}")),
            client_info=json.loads(fields.get("info", b"null")),
            owner=None if owner is None else (owner[0], owner[1]),
            log_level=fields.get("level", b"debug").decode(),
            subscriptions={k[4:] for k in fields if k.startswith("sub:")},
        )

    async def delete_session(self, session_id: str) -> None:
        keys = [
            self._sessions_key,
            self._key("s", session_id),
            self._key("e", session_id, 0),
            self._key("l", session_id),
        ]
        args = [
            session_id,
            self._key("e", session_id) + ":",
            self._channel(session_id),
            _payload("end", self.tag),
        ]
        await self._call("delete", self._script("delete", keys, args))
        self._touched.pop(session_id, None)

    async def save_state(self, session_id: str, log_level: str, subscriptions: set[str]) -> None:
        body = json.dumps({"level": log_level, "subscriptions": sorted(subscriptions)}).encode()
        args: list[Any] = [
            log_level,
            level_rank(log_level),
            self._channel(session_id),
            _payload("state", self.tag, body=body),
            *sorted(subscriptions),
        ]
        await self._call("state", self._script("state", [self._key("s", session_id)], args))

    def touch(self, session_id: str, *, force: bool = False) -> None:
        now = trio.current_time()
        last = self._touched.get(session_id)
        if not force and last is not None and now - last < self.touch_interval:
            return
        self._touched[session_id] = now
        keys = [
            self._sessions_key,
            self._key("s", session_id),
            self._key("e", session_id, 0),
            self._key("l", session_id),
        ]
        self._enqueue(("touch", keys, [self._ttl_ms, session_id]))

    def forget(self, session_id: str) -> None:
        self._touched.pop(session_id, None)

    def mark_get(self, session_id: str) -> None:
        """The session's GET stream has been opened: broadcasts are logged for it."""
        self._enqueue(("get", [self._key("s", session_id)], []))

    # -- events -------------------------------------------------------------------------

    def _append(self, session_id: str, stream: int, seq: int, frame: bytes, fin: bool) -> None:
        keys = [self._key("s", session_id), self._key("e", session_id, stream), self._key("l", session_id)]
        payload = _payload("finish" if fin else "event", self.tag, stream, seq, frame)
        args: list[Any] = [
            stream,
            seq,
            frame,
            "1" if fin else "0",
            self.max_events,
            self._ttl_ms,
            self.replayable_streams,
            self._key("e", session_id) + ":",
            self._channel(session_id),
            payload,
        ]
        self._enqueue(("append", keys, args))

    def append(self, session_id: str, stream: int, seq: int, frame: bytes) -> None:
        self._append(session_id, stream, seq, frame, fin=False)

    def finish(self, session_id: str, stream: int, seq: int) -> None:
        self._append(session_id, stream, seq, b"", fin=True)

    def publish(self, session_id: str, message: bytes) -> None:
        keys = [self._key("s", session_id), self._key("e", session_id, 0)]
        args: list[Any] = [message, self.max_events, self._ttl_ms, self._channel(session_id), self.tag]
        self._enqueue(("publish", keys, args))

    def send(self, session_id: str, signal: Signal) -> None:
        if self._client is None:
            return
        payload = _payload(signal.kind, self.tag, signal.stream, signal.seq, signal.body)
        self._enqueue(("pub", [], [self._channel(session_id), payload]))

    def broadcast(self, method: str, params: dict[str, Any] | None) -> None:
        if self._client is None:
            return
        message = jsonrpc.encode_notification(method, params)
        how, argument = "all", ""
        if method == "notifications/resources/updated":
            uri = (params or {}).get("uri")
            how, argument = "uri", uri if isinstance(uri, str) else ""
        elif method == "notifications/message" and params and isinstance(params.get("level"), str):
            how, argument = "rank", str(level_rank(params["level"]))
        args: list[Any] = [self.prefix, message, self.max_events, self._ttl_ms, how, argument, self.tag]
        self._enqueue(("broadcast", [self._sessions_key], args))
        body = json.dumps({"method": method, "params": params}).encode()
        self._enqueue(("pub", [], [f"{self.prefix}bcast", body]))

    async def replay(self, session_id: str, stream: int, after: int) -> Replay | None:
        client = self._client
        if client is None:
            raise BackendUnavailable("the shared session store is not connected")
        key = self._key("e", session_id, stream)
        entries = await self._call("replay", lambda: client.xrange(key))
        if not entries:
            return None
        seqs: list[tuple[int, dict[bytes, bytes]]] = []
        for entry in entries:
            fields = dict(entry.field_values) if hasattr(entry, "field_values") else dict(entry[1])
            seqs.append((int(fields[b"q"]), fields))
        first = seqs[0][0]
        if first > after + 1:
            return None  # events after the resume point were evicted
        finished = b"fin" in seqs[-1][1]
        frames: list[tuple[int, bytes]] = []
        expected = after + 1
        for seq, fields in seqs:
            if b"fin" in fields or seq <= after:
                continue
            if seq != expected:
                return None  # a gap (a write lost while the store was unreachable)
            expected += 1
            frame = fields.get(b"f")
            if frame is None:
                frame = sse.event(fields.get(b"m", b""), id=format_event_id(stream, seq))
            frames.append((seq, frame))
        last = seqs[-1][0]
        if after > last and (finished or stream == 0):
            return None  # a resume point this stream never issued
        return Replay(frames, finished)

    # -- tasks --------------------------------------------------------------------------

    async def store_task(self, task_id: str, record: bytes, ttl_ms: int) -> None:
        client = self._client
        if client is None:
            raise BackendUnavailable("the shared session store is not connected")
        await self._ensure_tag()
        key = self._key("t", task_id)
        await self._call("task", lambda: client.set(key, record, px=max(1, ttl_ms)))

    def save_task(self, task_id: str, record: bytes, ttl_ms: int) -> int:
        if self._client is None:
            return -1
        return self._enqueue(("set", [self._key("t", task_id)], [record, max(1, ttl_ms)]))

    def delete_task(self, task_id: str) -> None:
        if self._client is None:
            return
        self._enqueue(("del", [self._key("t", task_id)], []))

    async def load_task(self, task_id: str) -> bytes | None:
        client = self._client
        if client is None:
            raise BackendUnavailable("the shared session store is not connected")
        await self._ensure_tag()
        key = self._key("t", task_id)
        record: bytes | None = await self._call("task", lambda: client.get(key))
        return record

    def send_task(self, task_id: str, signal: Signal) -> None:
        if self._client is None:
            return
        # The task id first, on a line of its own, then a signal as on a session's bus.
        payload = task_id.encode() + b"\n" + _payload(signal.kind, self.tag, body=signal.body)
        self._enqueue(("pub", [], [self._tasks_channel, payload]))

    def statistics(self) -> dict[str, int]:
        return {"queued_writes": self._queued, "dropped_writes": self.dropped_writes}
