//! The registry's conditional writes, as Lua scripts run with `EVAL`.
//!
//! Session adoption (DESIGN.md) makes ownership change hands, so a node may only rewrite, delete
//! or release a session key while the record still names it. Each check and write runs as one
//! script, so nothing can change the key between them. Redis caches a script's compiled form by
//! its hash, and these run off the request path (updates, closes, resyncs, adoptions), so the
//! script text is simply sent with every `EVAL`; fred sends them like any other command.
//!
//! Records are JSON; Redis's Lua has `cjson`. A value that does not decode is not ours to
//! protect, so it is treated like a record of this node.
//!
//! Every script touches several keys (session key and node sets), so a Redis Cluster would need
//! them in one hash slot; mcpd talks to one Redis (or a replicated primary), as the ADR decides.

use fred::types::{ClusterHash, CustomCommand};

/// `KEYS[1]` session key, `KEYS[2]` this node's set; `ARGV[1]` this node, `ARGV[2]` record,
/// `ARGV[3]` TTL in seconds, `ARGV[4]` session id. Writes the record unless another node owns
/// the key (then the id leaves this node's set). Returns 1 when written, 0 when owned elsewhere.
pub const PUT_OWN: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, rec = pcall(cjson.decode, cur)
  if ok and type(rec) == 'table' and rec.node ~= nil and rec.node ~= ARGV[1] then
    redis.call('SREM', KEYS[2], ARGV[4])
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
";

/// `KEYS[1]` session key, `KEYS[2]` this node's set; `ARGV[1]` this node, `ARGV[2]` session id.
/// Deletes the key unless another node owns it; the id always leaves this node's set. Returns 1
/// when deleted.
pub const DEL_OWN: &str = r"
redis.call('SREM', KEYS[2], ARGV[2])
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, rec = pcall(cjson.decode, cur)
if ok and type(rec) == 'table' and rec.node ~= nil and rec.node ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

/// `KEYS[1]` session key, `KEYS[2]` this node's set; `ARGV[1]` this node, `ARGV[2]` TTL in
/// milliseconds, `ARGV[3]` session id. Releases a session for adoption: the record stays (it
/// names this node, whose heartbeat is gone, so peers see it as stale) but expires after the
/// session's idle timeout, as the session itself would have; the id leaves this node's set.
/// Returns 1 when released.
pub const RELEASE_OWN: &str = r"
redis.call('SREM', KEYS[2], ARGV[3])
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, rec = pcall(cjson.decode, cur)
if ok and type(rec) == 'table' and rec.node ~= nil and rec.node ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// `KEYS[1]` session key, `KEYS[2]` this node's set, `KEYS[3]` the previous owner's set;
/// `ARGV[1]` the record as read, `ARGV[2]` the new record, `ARGV[3]` TTL in seconds, `ARGV[4]`
/// session id. Takes ownership only if the record is still exactly what was read: of several
/// nodes adopting the same orphan at once, exactly one wins. Returns 1 for the winner.
pub const CLAIM: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
redis.call('SREM', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
";

/// `KEYS[1]` this node's heartbeat key; `ARGV[1]` its value, `ARGV[2]` TTL in milliseconds.
/// Writes the heartbeat and returns the value it replaced, nil when the key had lapsed: a beat
/// that finds its key gone tells the node that peers may have taken its sessions, whatever its
/// own clocks say. (`SET … GET` answers the same from Redis 6.2 on; Redis 6.0, still shipped by
/// Debian 11 and Ubuntu 22.04, has only the script.)
pub const BEAT: &str = r"
local prev = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return prev
";

/// The `EVAL` command (fred has no Lua interface that runs in a batch, but runs any command).
pub fn eval() -> CustomCommand {
    CustomCommand::new_static("EVAL", ClusterHash::Offset(2), false)
}

/// `EVAL`'s arguments: the script, the key count, the keys, then the arguments.
pub fn args(script: &str, keys: &[&str], argv: &[&str]) -> Vec<String> {
    let mut out = Vec::with_capacity(2 + keys.len() + argv.len());
    out.push(script.to_owned());
    out.push(keys.len().to_string());
    out.extend(keys.iter().map(|k| (*k).to_owned()));
    out.extend(argv.iter().map(|a| (*a).to_owned()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_arguments_are_script_count_keys_then_args() {
        assert_eq!(
            args("S", &["k1", "k2"], &["a"]),
            vec!["S", "2", "k1", "k2", "a"]
        );
    }
}
