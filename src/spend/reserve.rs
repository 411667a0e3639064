//! Budget reservations: before the upstream call a request holds its estimated maximum cost
//! against every budget that binds it (key, team), so requests in flight at the same time
//! cannot together spend past the budget; the hold is released once the real cost is in the
//! spend. With Redis the holds are shared by every instance, else they are per instance.
//!
//! Admission for each budget: `spend + held by others + this estimate <= max_budget`. What can
//! still pass the budget is the estimates' error: a prompt longer in tokens than its estimate,
//! an answer longer than the output limit assumed, a fallback to a dearer model.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use std::time::Duration;

use redis::Script;

use crate::link::RedisLink;

/// How long a shared hold lives when its instance never releases it (it crashed): longer
/// than the longest request, as the limiter's parallel slots.
const HOLD_TTL: Duration = Duration::from_secs(660);

/// Per shared budget, a sorted set of holds: member `"<holder>|<amount>"`, score its expiry in
/// ms. Expired holds are dropped, the live ones summed; the hold is added to every set only
/// when it fits in all of them (returns 0), else returns the 1-based index of the budget that
/// is full and what is held there.
/// ARGV: now_ms, expiry_ms, member, amount, ttl_ms, then one headroom (max - spend) per key.
const RESERVE_LUA: &str = r#"
local amount = tonumber(ARGV[4])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  local held = 0
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    held = held + (tonumber(string.match(m, '|([^|]*)$')) or 0)
  end
  if held + amount > tonumber(ARGV[5 + i]) then
    return {i, tostring(held)}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[3])
  redis.call('PEXPIRE', key, ARGV[5])
end
return {0, '0'}
"#;

/// Relative slack on the comparison, so a request whose estimate is exactly the headroom
/// (as float sums go) fits.
const SLACK: f64 = 1e-9;

/// One budget a request counts against.
#[derive(Debug, Clone)]
pub struct BudgetClaim {
    /// `key:<token hash>` or `team:<team id>`.
    pub scope: String,
    /// How the budget is named in the error ("" for the key, "Team=<id> " for its team).
    pub label: String,
    pub spend: f64,
    pub max_budget: f64,
}

/// A request refused because its estimate does not fit in a budget.
#[derive(Debug)]
pub struct BudgetDenied {
    pub claim: BudgetClaim,
    /// Held by other requests in flight.
    pub held: f64,
    pub estimate: f64,
}

fn fits(claim: &BudgetClaim, held: f64, amount: f64) -> bool {
    claim.spend + held + amount <= claim.max_budget * (1.0 + SLACK)
}

/// The holds of this process (and, with Redis, the link to the shared ones). Cheap to clone.
#[derive(Clone)]
pub struct BudgetReservations {
    inner: Arc<Inner>,
}

struct Inner {
    /// Scope to the sum held by this process's requests.
    local: Mutex<foldhash::HashMap<String, f64>>,
    shared: Option<Shared>,
    next_id: AtomicU64,
}

struct Shared {
    link: RedisLink,
    reserve: Script,
    prefix: String,
    /// Names this process in hold members, so two instances' ids never collide.
    holder: String,
}

impl std::fmt::Debug for BudgetReservations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetReservations")
            .field("shared", &self.inner.shared.is_some())
            .finish()
    }
}

impl BudgetReservations {
    /// Holds kept in this process only.
    pub fn in_memory() -> Self {
        Self::build(None)
    }

    /// Holds shared through Redis (keys `<prefix>:budget:<scope>`). While Redis is down,
    /// requests fall back to this process's holds.
    pub fn redis(url: &str, timeout: Duration, prefix: &str) -> Result<Self, String> {
        let link = RedisLink::new(url, timeout, "budget").map_err(|e| e.to_string())?;
        Ok(Self::build(Some(Shared {
            link,
            reserve: Script::new(RESERVE_LUA),
            prefix: prefix.to_string(),
            holder: uuid::Uuid::new_v4().simple().to_string(),
        })))
    }

    fn build(shared: Option<Shared>) -> Self {
        BudgetReservations {
            inner: Arc::new(Inner {
                local: Mutex::new(Default::default()),
                shared,
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// Holds `amount` against every claim, or says which budget it does not fit in. No claim
    /// (no budget applies) or a zero amount holds nothing and costs nothing.
    pub async fn reserve(
        &self,
        claims: Vec<BudgetClaim>,
        amount: f64,
    ) -> Result<BudgetHold, BudgetDenied> {
        let amount = if amount.is_finite() {
            amount.max(0.0)
        } else {
            0.0
        };
        if claims.is_empty() {
            return Ok(BudgetHold::none());
        }
        if let Some(shared) = &self.inner.shared
            && !shared.link.is_down()
        {
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            let member = format!("{}:{id}|{amount}", shared.holder);
            let keys: Vec<String> = claims
                .iter()
                .map(|c| format!("{}:budget:{}", shared.prefix, c.scope))
                .collect();
            let now = unix_ms();
            let mut invocation = shared.reserve.prepare_invoke();
            for key in &keys {
                invocation.key(key);
            }
            invocation
                .arg(now)
                .arg(now + HOLD_TTL.as_millis() as u64)
                .arg(&member)
                .arg(amount)
                .arg(HOLD_TTL.as_millis() as u64);
            for claim in &claims {
                invocation.arg(claim.max_budget - claim.spend);
            }
            let answer: Result<(usize, String), _> = shared
                .link
                .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
                .await;
            match answer {
                Ok((0, _)) => {
                    return Ok(BudgetHold {
                        owner: Some(self.clone()),
                        held: Held::Shared { keys, member },
                    });
                }
                Ok((i, held)) => {
                    let claim = claims.into_iter().nth(i.saturating_sub(1));
                    return Err(BudgetDenied {
                        // The script only answers indexes of the keys it was given.
                        claim: claim.unwrap_or_else(unknown_claim),
                        held: held.parse().unwrap_or(0.0),
                        estimate: amount,
                    });
                }
                // The link logged the outage; this request counts in this process only.
                Err(_) => {}
            }
        }
        self.reserve_local(claims, amount)
    }

    fn reserve_local(
        &self,
        claims: Vec<BudgetClaim>,
        amount: f64,
    ) -> Result<BudgetHold, BudgetDenied> {
        let mut local = self.inner.local.lock();
        for claim in &claims {
            let held = local.get(&claim.scope).copied().unwrap_or(0.0);
            if !fits(claim, held, amount) {
                return Err(BudgetDenied {
                    claim: claim.clone(),
                    held,
                    estimate: amount,
                });
            }
        }
        let scopes: Vec<String> = claims.into_iter().map(|c| c.scope).collect();
        for scope in &scopes {
            *local.entry(scope.clone()).or_insert(0.0) += amount;
        }
        Ok(BudgetHold {
            owner: Some(self.clone()),
            held: Held::Local { scopes, amount },
        })
    }

    /// What this process holds against a scope now (for tests and `/key/info`-style views).
    pub fn held_locally(&self, scope: &str) -> f64 {
        let local = self.inner.local.lock();
        local.get(scope).copied().unwrap_or(0.0)
    }

    fn release_local(&self, scopes: &[String], amount: f64) {
        let mut local = self.inner.local.lock();
        for scope in scopes {
            if let Some(held) = local.get_mut(scope) {
                *held -= amount;
                // Float sums drift: an (almost) empty hold is removed, not left at 1e-19.
                if *held <= amount.abs() * SLACK {
                    local.remove(scope);
                }
            }
        }
    }
}

fn unknown_claim() -> BudgetClaim {
    BudgetClaim {
        scope: String::new(),
        label: String::new(),
        spend: 0.0,
        max_budget: 0.0,
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A request's hold; released when dropped (after its cost is recorded, or when it failed).
#[must_use = "the hold is released when dropped"]
pub struct BudgetHold {
    owner: Option<BudgetReservations>,
    held: Held,
}

enum Held {
    None,
    Local { scopes: Vec<String>, amount: f64 },
    Shared { keys: Vec<String>, member: String },
}

impl BudgetHold {
    /// A hold of nothing (no budget applies to the caller).
    pub fn none() -> Self {
        BudgetHold {
            owner: None,
            held: Held::None,
        }
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        matches!(self.held, Held::None)
    }
}

impl Drop for BudgetHold {
    fn drop(&mut self) {
        let Some(owner) = self.owner.take() else {
            return;
        };
        match std::mem::replace(&mut self.held, Held::None) {
            Held::None => {}
            Held::Local { scopes, amount } => owner.release_local(&scopes, amount),
            Held::Shared { keys, member } => {
                // Outside a runtime (shutdown) the hold simply expires after HOLD_TTL.
                if let (Ok(handle), Some(shared)) =
                    (tokio::runtime::Handle::try_current(), &owner.inner.shared)
                {
                    let link = shared.link.clone();
                    handle.spawn(async move {
                        let _ = link
                            .call(|mut conn| async move {
                                let mut pipe = redis::pipe();
                                for key in &keys {
                                    pipe.zrem(key, &member).ignore();
                                }
                                pipe.query_async::<()>(&mut conn).await
                            })
                            .await;
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(scope: &str, spend: f64, max: f64) -> BudgetClaim {
        BudgetClaim {
            scope: scope.to_string(),
            label: String::new(),
            spend,
            max_budget: max,
        }
    }

    #[tokio::test]
    async fn holds_add_up_until_the_budget_is_full_and_free_when_dropped() {
        let r = BudgetReservations::in_memory();
        let a = r
            .reserve(vec![claim("key:a", 0.0, 3.0)], 1.0)
            .await
            .unwrap();
        let b = r
            .reserve(vec![claim("key:a", 0.0, 3.0)], 2.0)
            .await
            .unwrap();
        let denied = r
            .reserve(vec![claim("key:a", 0.0, 3.0)], 1.0)
            .await
            .err()
            .unwrap();
        assert_eq!(denied.held, 3.0);
        drop(a);
        assert_eq!(r.held_locally("key:a"), 2.0);
        let c = r
            .reserve(vec![claim("key:a", 0.0, 3.0)], 1.0)
            .await
            .unwrap();
        drop((b, c));
        assert_eq!(r.held_locally("key:a"), 0.0);
    }

    #[tokio::test]
    async fn a_request_that_does_not_fit_its_team_holds_nothing_on_its_key() {
        let r = BudgetReservations::in_memory();
        let denied = r
            .reserve(
                vec![claim("key:a", 0.0, 10.0), claim("team:t", 0.5, 1.0)],
                0.75,
            )
            .await
            .err()
            .unwrap();
        assert_eq!(denied.claim.scope, "team:t");
        assert_eq!(r.held_locally("key:a"), 0.0);
    }

    #[tokio::test]
    async fn spend_already_recorded_counts_against_the_estimate() {
        let r = BudgetReservations::in_memory();
        assert!(
            r.reserve(vec![claim("key:a", 2.5, 3.0)], 1.0)
                .await
                .is_err()
        );
        assert!(r.reserve(vec![claim("key:a", 2.0, 3.0)], 1.0).await.is_ok());
    }
}
