//! The Lua scripts: two keep a stream bounded without losing what nobody read (`XADD`
//! refused when the stream is full, so the agent spools instead of Redis trimming unread
//! entries; trimming of what every consumer group has acknowledged), and one reads with
//! every field cut to a bounded length, so that a huge entry never reaches the collector.

use std::sync::LazyLock;

use redis::Script;

/// The error prefix of a refused `XADD` (the stream holds `maxlen` entries).
pub(super) const FULL: &str = "HBFULL";

/// `XADD key * payload ARGV[2] key ARGV[3] routing ARGV[4]` unless the stream already holds
/// `ARGV[1]` entries: then an error reply starting with [`FULL`], and nothing written.
pub(super) static XADD_IF_ROOM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return redis.error_reply('HBFULL stream ' .. KEYS[1] .. ' is full: ' .. ARGV[1] ..
    ' entries not yet acknowledged by every collector group (maxlen)')
end
return redis.call('XADD', KEYS[1], '*', 'payload', ARGV[2], 'key', ARGV[3], 'routing', ARGV[4])
",
    )
});

/// Deletes the entries of `KEYS[1]` that every consumer group has acknowledged: those before
/// the lowest of each group's smallest pending id (or, with nothing pending, its last
/// delivered id). Returns how many were deleted; a stream without groups is left alone.
pub(super) static TRIM_ACKNOWLEDGED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
local floor = nil
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  local low = info['last-delivered-id']
  if tonumber(info['pending']) > 0 then
    low = redis.call('XPENDING', KEYS[1], info['name'])[2]
  end
  if floor == nil or before(low, floor) then floor = low end
end
if floor == nil or floor == '0-0' then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', floor)
",
    )
});

/// Runs the reading command in `ARGV[3..]` (`XREADGROUP`, `XAUTOCLAIM`, `XCLAIM`) and returns
/// its reply with every string longer than `ARGV[1]` bytes replaced by the pair (its length,
/// its first `ARGV[2]` bytes). A stream field is always a string, so no entry can pass for
/// such a pair. (Scripts do not block: `XREADGROUP` is given no `BLOCK` here.)
pub(super) static SCREENED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local max, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
local function screen(v)
  if type(v) == 'table' then
    if v.err or v.ok then return v end
    for i = 1, #v do v[i] = screen(v[i]) end
  elseif type(v) == 'string' and #v > max then
    return {#v, string.sub(v, 1, keep)}
  end
  return v
end
return screen(redis.call(unpack(ARGV, 3)))
",
    )
});
