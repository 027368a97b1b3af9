"""The Lua scripts behind the Redis engines: each change to shared data is one atomic step.

Keys (``P`` is the prefix plus ``:``, ``imbot:`` by default)::

    P seen:<key>        "1", expires after the dedupe window (7 days): the event was accepted
    P ev:<key>          hash of a pending event: raw, conv, seq, starts, ff (first failure),
                        err, h (set once it was handed to a lane)
    P pending           zset of pending keys by seq (acceptance order); P seq the counter
    P q:<conv>          list: the conversation's pending keys, in acceptance order
    P lease:<conv>      the token of the process running the conversation's lane (PX lease)
    P active           zset: conversations with a queue or a lane, by lease deadline (ms);
                        0 = free to take at once
    P dead              zset of dead-letter keys by dead_at; P dl:<key> hash of one
    P st:<conv>         hash of a conversation's state: d (JSON), v (version)
    P ask:<conv>:<who>  "<token>|<waiter>" while a ctx.ask waits for that sender (valid
                        only while <token> holds the conversation's lease)
    P ans:<token>       list of "<waiter>\\n<raw>": answers for one process's waiters
    P watch:<conv>      "<token>" while a turn of that process waits on the queue (PX)
    P wake:<token>      list of conversations: "an event joined the queue you watch"

Scripts build key names from the prefix, so they need one Redis server (or a primary with
replicas), not Redis Cluster. Times come from the server's clock (``TIME``), so processes on
machines whose clocks disagree still agree on leases.

A lane handout answers ``{1, key, raw, was_handed, state, version}``: ``raw`` is ``false``
when the key is the event the caller just sent; ``was_handed`` is 1 when some lane had it
before (its handling started and never finished: a crash, a lost lease).
"""

from __future__ import annotations

__all__ = [
    "ADD",
    "ADMIT",
    "ADVANCE",
    "ASK_CLOSE",
    "COMPLETE",
    "DEAD_LETTER",
    "FAILED",
    "PEEK",
    "RELEASE",
    "RENEW",
    "REQUEUE",
    "SAVE_STATE",
    "STARTED",
    "TAKEOVER",
    "WATCH",
]

_PROLOGUE = """
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function head(conv, known)
  local q = P .. 'q:' .. conv
  while true do
    local key = redis.call('LINDEX', q, 0)
    if not key then return nil end
    local ev = P .. 'ev:' .. key
    if redis.call('EXISTS', ev) == 1 then
      local was = 1 - redis.call('HSETNX', ev, 'h', '1')
      local raw = false
      if key ~= known then raw = redis.call('HGET', ev, 'raw') end
      return {key, raw, was}
    end
    redis.call('LPOP', q)
  end
end
local function state_of(conv, want)
  if want ~= '1' then return {false, false} end
  return redis.call('HMGET', P .. 'st:' .. conv, 'd', 'v')
end
"""

ADMIT = (
    _PROLOGUE
    + """
local key, raw, conv, token = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local lease_ms, ttl, sender = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local want, force = ARGV[9], ARGV[10]
local ev = P .. 'ev:' .. key
if force ~= '1' then
  if redis.call('EXISTS', ev) == 1 then return {0} end
  if not redis.call('SET', P .. 'seen:' .. key, '1', 'NX', 'EX', ttl) then return {0} end
  if sender ~= '' then
    local ask = P .. 'ask:' .. conv .. ':' .. sender
    local waiter = redis.call('GET', ask)
    if waiter then
      redis.call('DEL', ask)
      local sep = string.find(waiter, '|', 1, true)
      local owner = string.sub(waiter, 1, sep - 1)
      -- The asker holds the lane while it waits: a question whose process lost the lane
      -- (it died) is stale, and the message is an ordinary one.
      if redis.call('GET', P .. 'lease:' .. conv) == owner then
        local box = P .. 'ans:' .. owner
        redis.call('RPUSH', box, string.sub(waiter, sep + 1) .. '\\n' .. raw)
        redis.call('PEXPIRE', box, 600000)
        return {3}
      end
    end
  end
end
local seq = redis.call('INCR', P .. 'seq')
redis.call('HSET', ev, 'raw', raw, 'conv', conv, 'seq', seq)
redis.call('ZADD', P .. 'pending', seq, key)
redis.call('RPUSH', P .. 'q:' .. conv, key)
if redis.call('SET', P .. 'lease:' .. conv, token, 'NX', 'PX', lease_ms) then
  redis.call('ZADD', P .. 'active', now_ms() + lease_ms, conv)
  local h = head(conv, key)
  local s = state_of(conv, want)
  return {1, h[1], h[2], h[3], s[1], s[2]}
end
redis.call('ZADD', P .. 'active', 'NX', now_ms() + lease_ms, conv)
local watch = P .. 'watch:' .. conv
local watcher = redis.call('GET', watch)
if watcher and watcher ~= token then
  -- A turn elsewhere waits on this queue: one notice, and it watches again if it must.
  redis.call('DEL', watch)
  local box = P .. 'wake:' .. watcher
  redis.call('RPUSH', box, conv)
  redis.call('PEXPIRE', box, 60000)
end
return {2}
"""
)
"""Accept one webhook: dedupe, answer an open ask, or queue it and try to take the lane.

ARGV: prefix, key, raw, conv, token, lease_ms, ttl_s, sender ('' when it cannot answer an
ask), want_state ('1'/'0'), force ('1' to queue an event already accepted). Answers
``{0}`` duplicate, ``{3}`` answered an ask, ``{2}`` queued (another lane runs the
conversation; a turn watching it there gets a notice), or a handout (this process now
holds the lane).
"""

ADVANCE = (
    _PROLOGUE
    + """
local conv, token, lease_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
local release, want, base, data = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local q = P .. 'q:' .. conv
local lease = P .. 'lease:' .. conv
local status = 1
if base ~= '' then
  -- The event's state change lands with its completion, or not at all.
  local st = P .. 'st:' .. conv
  local v = tonumber(redis.call('HGET', st, 'v') or '0')
  if v ~= tonumber(base) then
    status = 4
  elseif data == '' then
    redis.call('DEL', st)
  else
    redis.call('HSET', st, 'd', data, 'v', v + 1)
  end
end
if status == 1 then
  for i = 9, #ARGV do
    local done = ARGV[i]
    redis.call('DEL', P .. 'ev:' .. done)
    redis.call('ZREM', P .. 'pending', done)
    if redis.call('LINDEX', q, 0) == done then
      redis.call('LPOP', q)
    else
      redis.call('LREM', q, 1, done)
    end
  end
end
local holder = redis.call('GET', lease)
if holder and holder ~= token then return {-1} end
if release == '1' then
  if holder then redis.call('DEL', lease) end
  if redis.call('LLEN', q) > 0 then
    redis.call('ZADD', P .. 'active', 0, conv)
  else
    redis.call('ZREM', P .. 'active', conv)
  end
  return {2}
end
local h = head(conv, '')
if not h then
  if holder then redis.call('DEL', lease) end
  redis.call('ZREM', P .. 'active', conv)
  return {2}
end
redis.call('SET', lease, token, 'PX', lease_ms)
redis.call('ZADD', P .. 'active', now_ms() + lease_ms, conv)
local s = state_of(conv, want)
return {status, h[1], h[2], h[3], s[1], s[2]}
"""
)
"""Finish a lane's events and hand out the conversation's next one, or release the lane.

ARGV: prefix, conv, token, lease_ms, release ('1' to stop here: the lease is dropped and
the queue left for others), want_state, the state's base version ('' when the events
changed no state) and new JSON ('' to delete it), then the keys to complete (none, the one
that ran, or also those a turn took from behind it). The state is saved only if it is
still at its base version, together with the completions; otherwise nothing is completed
and the answer is a handout marked 4: the event runs again on the newer state. Answers a
handout (1), ``{2}`` released (nothing queued, or asked to stop), ``{-1}`` the lease is
someone else's (the keys are still completed, the state saved, unless in conflict).
"""

PEEK = """
local P, conv = ARGV[1], ARGV[2]
local out = {}
local keys = redis.call('LRANGE', P .. 'q:' .. conv, tonumber(ARGV[3]), tonumber(ARGV[4]))
for _, key in ipairs(keys) do
  local raw = redis.call('HGET', P .. 'ev:' .. key, 'raw')
  if raw then
    table.insert(out, key)
    table.insert(out, raw)
  end
end
return out
"""
"""The events queued in a conversation's queue from position start to stop (0 is the one
running), as key, raw, key, raw... ARGV: prefix, conv, start, stop."""

WATCH = """
redis.call('SET', ARGV[1] .. 'watch:' .. ARGV[2], ARGV[3], 'PX', tonumber(ARGV[4]))
return redis.call('LLEN', ARGV[1] .. 'q:' .. ARGV[2])
"""
"""Ask for a notice (in ``wake:<token>``) when another process queues an event for the
conversation, and count its queue, in one step: nothing queued in between is missed.
ARGV: prefix, conv, token, ttl_ms."""

RENEW = (
    _PROLOGUE
    + """
local token, lease_ms = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local lost, retaken = {}, {}
for i = 4, #ARGV do
  local conv = ARGV[i]
  local lease = P .. 'lease:' .. conv
  local holder = redis.call('GET', lease)
  if holder == token or not holder then
    redis.call('SET', lease, token, 'PX', lease_ms)
    redis.call('ZADD', P .. 'active', now + lease_ms, conv)
    if not holder then table.insert(retaken, conv) end
  else
    table.insert(lost, conv)
  end
end
return {lost, retaken}
"""
)
"""Extend this process's leases, taking back those that lapsed (a pause, a Redis restart)
while nobody else took them. ARGV: prefix, token, lease_ms, conv... Answers
``{lost, retaken}``: the conversations another process holds now, and those taken back
(the caller releases any whose lane ended meanwhile)."""

TAKEOVER = (
    _PROLOGUE
    + """
local token, lease_ms, limit, want = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
-- Keys expire by the clock, also while the server is down: just after a restart every lease
-- has lapsed. For one lease the holders take theirs back (RENEW); only then is a lane
-- without a lease a lane whose process is gone.
local up, info = pcall(redis.call, 'INFO', 'server')
if up then
  local uptime = tonumber(string.match(info, 'uptime_in_seconds:(%d+)') or '')
  if uptime and uptime * 1000 < lease_ms then return {} end
end
local now = now_ms()
local out = {}
local found = redis.call('ZRANGEBYSCORE', P .. 'active', '-inf', now, 'LIMIT', 0, limit)
for _, conv in ipairs(found) do
  local lease = P .. 'lease:' .. conv
  local pttl = redis.call('PTTL', lease)
  if pttl == -1 then
    redis.call('PEXPIRE', lease, lease_ms)
    pttl = lease_ms
  end
  if pttl >= 0 then
    redis.call('ZADD', P .. 'active', now + pttl, conv)
  else
    local h = head(conv, '')
    if h then
      redis.call('SET', lease, token, 'PX', lease_ms)
      redis.call('ZADD', P .. 'active', now + lease_ms, conv)
      local s = state_of(conv, want)
      table.insert(out, {conv, h[1], h[2], h[3], s[1], s[2]})
    else
      redis.call('ZREM', P .. 'active', conv)
    end
  end
end
return out
"""
)
"""Take conversations that have queued events and no lane (their process died or left).

ARGV: prefix, token, lease_ms, limit, want_state. Answers ``{conv, key, raw, was_handed,
state, version}`` per conversation taken.
"""

RELEASE = """
local P, token = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  local conv = ARGV[i]
  local lease = P .. 'lease:' .. conv
  if redis.call('GET', lease) == token then
    redis.call('DEL', lease)
    if redis.call('LLEN', P .. 'q:' .. conv) > 0 then
      redis.call('ZADD', P .. 'active', 0, conv)
    else
      redis.call('ZREM', P .. 'active', conv)
    end
  end
end
return 1
"""
"""Drop this process's leases at shutdown; queued events become free to take at once.
ARGV: prefix, token, conv..."""

ASK_CLOSE = """
local ask = ARGV[1] .. 'ask:' .. ARGV[2] .. ':' .. ARGV[3]
if redis.call('GET', ask) == ARGV[4] then
  redis.call('DEL', ask)
  return 1
end
return 0
"""
"""Stop waiting for an answer. ARGV: prefix, conv, sender, waiter value. Answers 0 when the
question was answered meanwhile (the answer is on its way to the waiter's process)."""

ADD = """
local P, key, raw, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ev = P .. 'ev:' .. key
if redis.call('EXISTS', ev) == 1 then return 0 end
if not redis.call('SET', P .. 'seen:' .. key, '1', 'NX', 'EX', ttl) then return 0 end
local seq = redis.call('INCR', P .. 'seq')
redis.call('HSET', ev, 'raw', raw, 'seq', seq)
redis.call('ZADD', P .. 'pending', seq, key)
return 1
"""
"""``InboxStore.add`` outside lanes. ARGV: prefix, key, raw, ttl_s."""

COMPLETE = """
local P, key = ARGV[1], ARGV[2]
local ev = P .. 'ev:' .. key
local conv = redis.call('HGET', ev, 'conv')
redis.call('DEL', ev)
redis.call('ZREM', P .. 'pending', key)
if conv then redis.call('LREM', P .. 'q:' .. conv, 1, key) end
return 1
"""
"""``InboxStore.complete`` outside lanes. ARGV: prefix, key."""

STARTED = """
local ev = ARGV[1] .. 'ev:' .. ARGV[2]
if redis.call('EXISTS', ev) == 0 then return 0 end
return redis.call('HINCRBY', ev, 'starts', 1)
"""
"""Count a start of a resumed event. ARGV: prefix, key."""

FAILED = """
local ev = ARGV[1] .. 'ev:' .. ARGV[2]
if redis.call('EXISTS', ev) == 0 then return false end
redis.call('HSET', ev, 'starts', 0, 'err', ARGV[3])
redis.call('HSETNX', ev, 'ff', ARGV[4])
return redis.call('HGET', ev, 'ff')
"""
"""Record a transient failure. ARGV: prefix, key, error, now (Unix seconds). Answers the
first failure's time."""

DEAD_LETTER = """
local P, key = ARGV[1], ARGV[2]
local ev = P .. 'ev:' .. key
local f = redis.call('HMGET', ev, 'raw', 'conv', 'seq', 'ff')
if not f[1] then return 0 end
local dl = P .. 'dl:' .. key
redis.call('DEL', dl)
redis.call('HSET', dl, 'raw', f[1], 'reason', ARGV[3], 'error', ARGV[4], 'attempts', ARGV[5],
  'at', ARGV[6], 'seq', f[3] or 0)
if f[2] then
  redis.call('HSET', dl, 'conv', f[2])
  redis.call('LREM', P .. 'q:' .. f[2], 1, key)
end
if f[4] then redis.call('HSET', dl, 'ff', f[4]) end
redis.call('ZADD', P .. 'dead', ARGV[6], key)
redis.call('DEL', ev)
redis.call('ZREM', P .. 'pending', key)
return 1
"""
"""Move a pending event to the dead letters (and out of its conversation's queue).
ARGV: prefix, key, reason, error, attempts, now."""

REQUEUE = """
local P, key, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local dl = P .. 'dl:' .. key
local f = redis.call('HMGET', dl, 'raw', 'conv', 'seq')
if not f[1] then return false end
redis.call('DEL', dl)
redis.call('ZREM', P .. 'dead', key)
redis.call('SET', P .. 'seen:' .. key, '1', 'EX', ttl)
local ev = P .. 'ev:' .. key
local seq = f[3] or redis.call('INCR', P .. 'seq')
redis.call('HSET', ev, 'raw', f[1], 'seq', seq)
redis.call('ZADD', P .. 'pending', seq, key)
if f[2] then
  redis.call('HSET', ev, 'conv', f[2])
  redis.call('RPUSH', P .. 'q:' .. f[2], key)
  redis.call('ZADD', P .. 'active', 'NX', 0, f[2])
end
return f[1]
"""
"""Make a dead letter pending again, at the back of its conversation's queue, free to take.
ARGV: prefix, key, ttl_s. Answers the raw body, or false."""

SAVE_STATE = """
local st = ARGV[1] .. 'st:' .. ARGV[2]
local v = tonumber(redis.call('HGET', st, 'v') or '0')
if ARGV[4] ~= '-1' and v ~= tonumber(ARGV[4]) then return -1 end
if ARGV[3] == '' then
  redis.call('DEL', st)
  return 0
end
redis.call('HSET', st, 'd', ARGV[3], 'v', v + 1)
return v + 1
"""
"""Save (or, with empty data, delete) a state if its version is still the expected one.
ARGV: prefix, conv, JSON ('' to delete), expected version ('-1': any). Answers the new
version (0 after a delete), or -1 on a conflict."""
