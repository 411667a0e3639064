//! The Redis limiter: one Lua script per check covers every scope of a request, so instances
//! sharing a Redis share each limit exactly; Redis time is the clock, so instance clocks do
//! not matter. When Redis is unreachable, checks fall back to this instance's memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Script;

use super::memory::MemoryLimiter;
use super::{
    Held, LimitError, LimitKind, LimitRejection, LimitRequest, LimitScope, LimiterOptions, Quota,
    RateLimitInfo, Reservation, Store,
};
use crate::link::{LinkError, RedisLink};

/// Checks every scope (4 keys each: request log, token log, token sum, leases), then commits
/// all of them; returns `{0, scope index, kind, limit, retry ms}` on refusal or
/// `{1, then per scope: requests remaining, requests reset ms, tokens remaining, tokens reset
/// ms}` (-1 where a limit is not set). Token log members are `<admission>:<amount>`.
const ACQUIRE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local member = ARGV[3]
local n = #KEYS / 4
local cutoff = now - window
local function amount(m)
  return tonumber(string.match(m, ':(%d+)$') or '0')
end
for i = 0, n - 1 do
  local kr, kt, ks, kp = KEYS[i*4+1], KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
  local rpm = tonumber(ARGV[4+i*4])
  local tpm = tonumber(ARGV[5+i*4])
  local par = tonumber(ARGV[6+i*4])
  local need = tonumber(ARGV[7+i*4])
  if rpm >= 0 then
    redis.call('ZREMRANGEBYSCORE', kr, '-inf', cutoff)
    if redis.call('ZCARD', kr) >= rpm then
      local retry = window
      local oldest = redis.call('ZRANGE', kr, 0, 0, 'WITHSCORES')
      if oldest[2] then retry = tonumber(oldest[2]) + window - now end
      return {0, i, 1, rpm, retry}
    end
  end
  if tpm >= 0 then
    local expired = redis.call('ZRANGEBYSCORE', kt, '-inf', cutoff)
    if #expired > 0 then
      local freed = 0
      for _, m in ipairs(expired) do freed = freed + amount(m) end
      redis.call('ZREMRANGEBYSCORE', kt, '-inf', cutoff)
      redis.call('DECRBY', ks, freed)
    end
    local used = tonumber(redis.call('GET', ks) or '0')
    if used < 0 then
      redis.call('SET', ks, 0)
      used = 0
    end
    if used + need > tpm then
      local retry = window
      if need <= tpm then
        local entries = redis.call('ZRANGE', kt, 0, 999, 'WITHSCORES')
        local freed = 0
        for j = 1, #entries, 2 do
          freed = freed + amount(entries[j])
          if used - freed + need <= tpm then
            retry = tonumber(entries[j+1]) + window - now
            break
          end
        end
      end
      return {0, i, 2, tpm, retry}
    end
  end
  if par >= 0 then
    redis.call('ZREMRANGEBYSCORE', kp, '-inf', now)
    if redis.call('ZCARD', kp) >= par then
      return {0, i, 3, par, 1000}
    end
  end
end
local out = {1}
for i = 0, n - 1 do
  local kr, kt, ks, kp = KEYS[i*4+1], KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
  local rpm = tonumber(ARGV[4+i*4])
  local tpm = tonumber(ARGV[5+i*4])
  local par = tonumber(ARGV[6+i*4])
  local need = tonumber(ARGV[7+i*4])
  local rr, rreset, tr, treset = -1, -1, -1, -1
  if rpm >= 0 then
    redis.call('ZADD', kr, now, member)
    redis.call('PEXPIRE', kr, window + 1000)
    rr = rpm - redis.call('ZCARD', kr)
    local oldest = redis.call('ZRANGE', kr, 0, 0, 'WITHSCORES')
    rreset = tonumber(oldest[2]) + window - now
  end
  if tpm >= 0 then
    redis.call('ZADD', kt, now, member .. ':' .. need)
    local used = redis.call('INCRBY', ks, need)
    redis.call('PEXPIRE', kt, window + 1000)
    redis.call('PEXPIRE', ks, window + 1000)
    tr = tpm - used
    if tr < 0 then tr = 0 end
    local oldest = redis.call('ZRANGE', kt, 0, 0, 'WITHSCORES')
    treset = tonumber(oldest[2]) + window - now
  end
  if par >= 0 then
    redis.call('ZADD', kp, now + ttl, member)
    redis.call('PEXPIRE', kp, ttl + 1000)
  end
  table.insert(out, rr)
  table.insert(out, rreset)
  table.insert(out, tr)
  table.insert(out, treset)
end
return out
";

/// Replaces reservations with the real usage. KEYS: (token log, token sum) per scope; ARGV:
/// admission member, actual tokens, then the reserved amount per scope. A reservation already
/// out of the window is left alone.
const SETTLE_LUA: &str = r"
local base = ARGV[1]
local actual = tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  local kt, ks = KEYS[i*2-1], KEYS[i*2]
  local old = base .. ':' .. ARGV[2+i]
  local score = redis.call('ZSCORE', kt, old)
  if score then
    redis.call('ZREM', kt, old)
    redis.call('ZADD', kt, score, base .. ':' .. ARGV[2])
    redis.call('INCRBY', ks, actual - tonumber(ARGV[2+i]))
  end
end
return 1
";

/// Limits shared through Redis, with this instance's memory as the fallback.
#[derive(Debug)]
pub struct RedisLimiter {
    link: RedisLink,
    fallback: MemoryLimiter,
    acquire: Script,
    settle: Script,
    prefix: String,
    /// Unique per limiter so admission members never collide across instances.
    instance: String,
    next_id: AtomicU64,
    window_ms: u64,
    lease_ttl_ms: u64,
}

impl RedisLimiter {
    pub fn new(url: &str, options: LimiterOptions) -> Result<Self, LimitError> {
        let link = RedisLink::new(url, options.redis_timeout, "ratelimit")?;
        Ok(RedisLimiter {
            link,
            fallback: MemoryLimiter::new(&options),
            acquire: Script::new(ACQUIRE_LUA),
            settle: Script::new(SETTLE_LUA),
            prefix: options.key_prefix.clone(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            next_id: AtomicU64::new(1),
            window_ms: u64::try_from(options.window.as_millis())
                .unwrap_or(u64::MAX / 4)
                .max(1),
            lease_ttl_ms: u64::try_from(options.lease_ttl.as_millis())
                .unwrap_or(u64::MAX / 4)
                .max(1),
        })
    }

    /// True while Redis is unreachable and this instance counts on its own.
    pub fn is_degraded(&self) -> bool {
        self.link.is_down()
    }

    pub(super) fn fallback(&self) -> &MemoryLimiter {
        &self.fallback
    }

    fn key(&self, scope: &LimitScope, suffix: &str) -> String {
        format!("{}:{}:{}:{suffix}", self.prefix, scope.kind(), scope.id())
    }

    fn member(&self, id: u64) -> String {
        format!("{}-{id}", self.instance)
    }

    pub(super) async fn acquire(
        &self,
        requests: &[LimitRequest],
    ) -> Result<(RateLimitInfo, Held), LimitRejection> {
        let mut scoped: Vec<&LimitRequest> = requests.iter().filter(|r| r.has_limits()).collect();
        scoped.sort_by(|a, b| a.scope.cmp(&b.scope));
        scoped.dedup_by(|a, b| a.scope == b.scope);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let member = self.member(id);

        let mut invocation = self.acquire.prepare_invoke();
        invocation
            .arg(self.window_ms)
            .arg(self.lease_ttl_ms)
            .arg(&member);
        let limit_arg = |l: Option<u64>| l.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
        for req in &scoped {
            invocation
                .key(self.key(&req.scope, "req"))
                .key(self.key(&req.scope, "tok"))
                .key(self.key(&req.scope, "toksum"))
                .key(self.key(&req.scope, "par"))
                .arg(limit_arg(req.rpm))
                .arg(limit_arg(req.tpm))
                .arg(limit_arg(req.max_parallel))
                .arg(req.reserved_tokens());
        }
        let reply: Result<Vec<i64>, LinkError> = self
            .link
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(_) => {
                crate::metrics::record_ratelimit_redis_fallback();
                return self.fallback.acquire(requests);
            }
        };
        parse_reply(&reply, &scoped, id)
    }

    pub(super) async fn settle(&self, id: u64, reservations: &[Reservation], actual: u64) {
        let mut invocation = self.settle.prepare_invoke();
        invocation.arg(self.member(id)).arg(actual);
        for r in reservations {
            invocation
                .key(self.key(&r.scope, "tok"))
                .key(self.key(&r.scope, "toksum"))
                .arg(r.amount);
        }
        let result: Result<i64, LinkError> = self
            .link
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        if let Err(e) = result {
            // The estimate stays counted until it leaves the window: conservative.
            tracing::debug!(error = %e, "token settlement not written to redis");
        }
    }

    pub(super) async fn release(&self, id: u64, scopes: &[LimitScope]) {
        let member = self.member(id);
        let mut pipe = redis::pipe();
        for scope in scopes {
            pipe.zrem(self.key(scope, "par"), &member).ignore();
        }
        let result: Result<(), LinkError> = self
            .link
            .call(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await;
        if let Err(e) = result {
            // The lease TTL frees the slot.
            tracing::debug!(error = %e, "parallel slot release not written to redis");
        }
    }
}

fn parse_reply(
    reply: &[i64],
    scoped: &[&LimitRequest],
    id: u64,
) -> Result<(RateLimitInfo, Held), LimitRejection> {
    let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
    let mut held = Held {
        store: Store::Redis,
        id,
        leases: Vec::new(),
        reservations: Vec::new(),
    };
    if reply.first() == Some(&0) {
        let get = |i: usize| reply.get(i).copied().unwrap_or(0);
        let scope = scoped
            .get(usize::try_from(get(1)).unwrap_or(0))
            .map_or(LimitScope::Global, |r| r.scope.clone());
        let kind = match get(2) {
            1 => LimitKind::Requests,
            2 => LimitKind::Tokens,
            _ => LimitKind::Parallel,
        };
        return Err(LimitRejection::new(
            scope,
            kind,
            u64::try_from(get(3)).unwrap_or(0),
            ms(get(4)),
        ));
    }
    let mut info = RateLimitInfo::default();
    for (i, req) in scoped.iter().enumerate() {
        let at = |j: usize| reply.get(1 + i * 4 + j).copied().unwrap_or(-1);
        if let Some(rpm) = req.rpm {
            info.merge(
                LimitKind::Requests,
                Quota {
                    limit: rpm,
                    remaining: u64::try_from(at(0)).unwrap_or(0),
                    reset: ms(at(1)),
                },
            );
        }
        if let Some(tpm) = req.tpm {
            info.merge(
                LimitKind::Tokens,
                Quota {
                    limit: tpm,
                    remaining: u64::try_from(at(2)).unwrap_or(0),
                    reset: ms(at(3)),
                },
            );
            held.reservations.push(Reservation {
                scope: req.scope.clone(),
                seq: 0,
                amount: req.reserved_tokens(),
            });
        }
        if req.max_parallel.is_some() {
            held.leases.push(req.scope.clone());
        }
    }
    Ok((info, held))
}
