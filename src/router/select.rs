//! Deployment selection for each routing strategy; pure functions over the live stats.
//!
//! `pick` runs on every request, so it makes one pass over the group without allocating: the
//! candidate pool (best `(tried, order)` key) is narrowed as the pass goes, and the random
//! choice within it is made by reservoir sampling instead of collecting the pool first.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rand::{Rng, RngExt};

use super::Member;
use crate::config::RoutingStrategy;

/// Share of picks that `latency-based-routing` spends exploring at random, so a deployment
/// that was slow once gets measured again.
pub const EXPLORATION: f64 = 0.1;

/// Picks a member index with the thread's RNG. See [`pick_with`].
pub fn pick(
    strategy: RoutingStrategy,
    members: &[Arc<Member>],
    tried: &[usize],
    now: Instant,
) -> Option<usize> {
    pick_with(strategy, members, tried, now, &mut rand::rng())
}

/// Picks a member index: skips cooling-down members and, while others remain, those already
/// tried; keeps only the lowest `order` (no `order` ranks last); then applies the strategy.
/// `None` when every member is cooling down. The RNG is a parameter so tests can seed it.
pub fn pick_with<R: Rng + ?Sized>(
    strategy: RoutingStrategy,
    members: &[Arc<Member>],
    tried: &[usize],
    now: Instant,
    rng: &mut R,
) -> Option<usize> {
    // A single healthy deployment needs neither the pool nor the RNG.
    if let [only] = members {
        return only.stats.cooling_until(now).is_none().then_some(0);
    }
    // Latency-based decides up front whether this pick explores, so the pass below does
    // either a uniform draw or a minimum, never both.
    let explore = strategy == RoutingStrategy::LatencyBased && rng.random::<f64>() < EXPLORATION;
    let mut best_key: Option<(bool, u32)> = None;
    let mut pool = Pool::default();
    for (index, member) in members.iter().enumerate() {
        if member.stats.cooling_until(now).is_some() {
            continue;
        }
        // Untried before tried, then lower `order` first: the pool is every member with the
        // smallest key.
        let key = (
            tried.contains(&index),
            member.deployment.order.unwrap_or(u32::MAX),
        );
        match best_key {
            Some(best) if key > best => continue,
            Some(best) if key == best => {}
            _ => {
                best_key = Some(key);
                pool = Pool::default();
            }
        }
        match strategy {
            RoutingStrategy::SimpleShuffle | RoutingStrategy::UsageBased => {
                pool.offer_weighted(index, weight(member), rng);
            }
            RoutingStrategy::LeastBusy => {
                pool.offer_least(index, member.stats.in_flight.load(Ordering::Relaxed), rng);
            }
            RoutingStrategy::LatencyBased if explore => pool.offer_uniform(index, rng),
            RoutingStrategy::LatencyBased => {
                // Unmeasured deployments (latency 0) come first, so each gets measured.
                pool.offer_least_fixed(index, member.stats.latency_us.load(Ordering::Relaxed));
            }
        }
    }
    pool.chosen.or(pool.uniform)
}

/// The running choice over the pool seen so far.
#[derive(Default)]
struct Pool {
    /// The strategy's choice.
    chosen: Option<usize>,
    /// A uniform choice among zero-weight members, used when no member has weight.
    uniform: Option<usize>,
    /// Members offered to the uniform (or tie-breaking) reservoir.
    count: u32,
    total_weight: f64,
    /// The smallest value seen (in-flight count or latency).
    least: u64,
}

impl Pool {
    /// Weighted reservoir sampling: after the pass, each member was kept with probability
    /// `weight / total`.
    fn offer_weighted<R: Rng + ?Sized>(&mut self, index: usize, weight: f64, rng: &mut R) {
        if weight > 0.0 {
            self.total_weight += weight;
            if self.chosen.is_none() || rng.random::<f64>() * self.total_weight < weight {
                self.chosen = Some(index);
            }
        } else {
            self.offer_uniform_fallback(index, rng);
        }
    }

    fn offer_uniform_fallback<R: Rng + ?Sized>(&mut self, index: usize, rng: &mut R) {
        self.count += 1;
        if self.count == 1 || rng.random_range(0..self.count) == 0 {
            self.uniform = Some(index);
        }
    }

    fn offer_uniform<R: Rng + ?Sized>(&mut self, index: usize, rng: &mut R) {
        self.count += 1;
        if self.count == 1 || rng.random_range(0..self.count) == 0 {
            self.chosen = Some(index);
        }
    }

    /// The smallest value wins; ties are broken uniformly at random.
    fn offer_least<R: Rng + ?Sized>(&mut self, index: usize, value: u64, rng: &mut R) {
        if self.chosen.is_none() || value < self.least {
            self.least = value;
            self.count = 0;
        } else if value > self.least {
            return;
        }
        self.offer_uniform(index, rng);
    }

    /// The smallest value wins; ties go to the first (config order).
    fn offer_least_fixed(&mut self, index: usize, value: u64) {
        if self.chosen.is_none() || value < self.least {
            self.least = value;
            self.chosen = Some(index);
        }
    }
}

/// `weight`, else `rpm`, else `tpm`, else 1: LiteLLM's simple-shuffle weighting.
fn weight(member: &Member) -> f64 {
    let d = &member.deployment;
    d.weight
        .or(d.rpm.map(|r| r as f64))
        .or(d.tpm.map(|t| t as f64))
        .unwrap_or(1.0)
}

#[cfg(test)]
mod tests {
    //! Statistical tests: each strategy over many seeded picks. Seeds make the runs
    //! reproducible; the tolerances are wide enough (many standard deviations) to hold for
    //! any seed.

    use std::collections::HashMap;
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::config::GatewayConfig;
    use crate::router::Router;

    const PICKS: usize = 20_000;

    /// The members of group `g` built from `litellm_params` fragments, one per deployment.
    fn members(params: &[&str]) -> Vec<Arc<Member>> {
        let mut yaml = String::from("model_list:\n");
        for (i, p) in params.iter().enumerate() {
            yaml.push_str(&format!(
                "  - model_name: g\n    litellm_params: {{model: openai/m, mock_response: ok{}}}\n    model_info: {{id: d{i}}}\n",
                if p.is_empty() {
                    String::new()
                } else {
                    format!(", {p}")
                }
            ));
        }
        let config =
            GatewayConfig::from_yaml_str(&yaml, &HashMap::<String, String>::new()).unwrap();
        let router = Router::build(&config);
        router.group("g").unwrap().members.clone()
    }

    fn shares(
        strategy: RoutingStrategy,
        members: &[Arc<Member>],
        tried: &[usize],
        seed: u64,
    ) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let now = Instant::now();
        let mut counts = vec![0usize; members.len()];
        for _ in 0..PICKS {
            counts[pick_with(strategy, members, tried, now, &mut rng).unwrap()] += 1;
        }
        counts.iter().map(|c| *c as f64 / PICKS as f64).collect()
    }

    fn assert_close(actual: &[f64], expected: &[f64]) {
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= 0.03,
                "member {i}: share {a:.4}, expected {e:.4} (all: {actual:?})"
            );
        }
    }

    fn cool_down(member: &Member) {
        assert!(
            member
                .stats
                .record_failure(Instant::now(), 0, Duration::from_secs(60))
        );
    }

    #[test]
    fn simple_shuffle_follows_weight_then_rpm_then_tpm() {
        let by_weight = members(&["weight: 1", "weight: 3", "weight: 6"]);
        let by_rpm = members(&["rpm: 100", "rpm: 300"]);
        let by_tpm = members(&["tpm: 9000", "tpm: 1000"]);
        // `weight` wins over `rpm` on the same deployment.
        let mixed = members(&["weight: 1, rpm: 1000", "weight: 1, rpm: 10"]);
        let unweighted = members(&["", "", "", ""]);
        for seed in [1, 2, 3] {
            let s = RoutingStrategy::SimpleShuffle;
            assert_close(&shares(s, &by_weight, &[], seed), &[0.1, 0.3, 0.6]);
            assert_close(&shares(s, &by_rpm, &[], seed), &[0.25, 0.75]);
            assert_close(&shares(s, &by_tpm, &[], seed), &[0.9, 0.1]);
            assert_close(&shares(s, &mixed, &[], seed), &[0.5, 0.5]);
            assert_close(&shares(s, &unweighted, &[], seed), &[0.25; 4]);
        }
    }

    #[test]
    fn zero_weight_is_never_picked_while_another_has_weight() {
        let m = members(&["weight: 0", "weight: 2"]);
        let s = shares(RoutingStrategy::SimpleShuffle, &m, &[], 7);
        assert_eq!(s, vec![0.0, 1.0]);
        let all_zero = members(&["weight: 0", "weight: 0"]);
        assert_close(
            &shares(RoutingStrategy::SimpleShuffle, &all_zero, &[], 7),
            &[0.5, 0.5],
        );
    }

    #[test]
    fn least_busy_picks_fewest_in_flight_and_splits_ties() {
        let m = members(&["", "", ""]);
        m[0].stats.in_flight.store(5, Ordering::Relaxed);
        m[1].stats.in_flight.store(1, Ordering::Relaxed);
        m[2].stats.in_flight.store(3, Ordering::Relaxed);
        assert_eq!(
            shares(RoutingStrategy::LeastBusy, &m, &[], 1),
            vec![0.0, 1.0, 0.0]
        );
        m[2].stats.in_flight.store(1, Ordering::Relaxed);
        assert_close(
            &shares(RoutingStrategy::LeastBusy, &m, &[], 2),
            &[0.0, 0.5, 0.5],
        );
    }

    #[test]
    fn latency_based_prefers_the_fastest_and_explores_about_ten_percent() {
        let m = members(&["", "", ""]);
        m[0].stats.latency_us.store(90_000, Ordering::Relaxed);
        m[1].stats.latency_us.store(20_000, Ordering::Relaxed);
        m[2].stats.latency_us.store(50_000, Ordering::Relaxed);
        // 90% exploit plus a third of the 10% exploration each.
        let explore_each = EXPLORATION / 3.0;
        let expected = [explore_each, 1.0 - EXPLORATION + explore_each, explore_each];
        for seed in [1, 2, 3] {
            let s = shares(RoutingStrategy::LatencyBased, &m, &[], seed);
            assert_close(&s, &expected);
            // Exploration really happens: the slow ones are each seen well over 1%.
            assert!(s[0] > 0.01 && s[2] > 0.01, "{s:?}");
        }
        // An unmeasured deployment is tried before any measured one.
        let fresh = members(&["", ""]);
        fresh[0].stats.latency_us.store(1_000, Ordering::Relaxed);
        let s = shares(RoutingStrategy::LatencyBased, &fresh, &[], 4);
        assert_close(&s, &[EXPLORATION / 2.0, 1.0 - EXPLORATION / 2.0]);
    }

    #[test]
    fn order_one_always_while_available_then_order_two() {
        let m = members(&["order: 2", "order: 1", "order: 1", "order: 3"]);
        for strategy in [
            RoutingStrategy::SimpleShuffle,
            RoutingStrategy::LeastBusy,
            RoutingStrategy::LatencyBased,
        ] {
            let s = shares(strategy, &m, &[], 5);
            assert_eq!(s[0] + s[3], 0.0, "{strategy:?}: {s:?}");
            // Latency ties (both unmeasured) go to the first; the others split evenly.
            if strategy != RoutingStrategy::LatencyBased {
                assert_close(&s[1..3], &[0.5, 0.5]);
            }
        }
        cool_down(&m[1]);
        let s = shares(RoutingStrategy::SimpleShuffle, &m, &[], 6);
        assert_eq!(s, vec![0.0, 0.0, 1.0, 0.0]);
        cool_down(&m[2]);
        let s = shares(RoutingStrategy::SimpleShuffle, &m, &[], 6);
        assert_eq!(s, vec![1.0, 0.0, 0.0, 0.0]);
        cool_down(&m[0]);
        cool_down(&m[3]);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            pick_with(
                RoutingStrategy::SimpleShuffle,
                &m,
                &[],
                Instant::now(),
                &mut rng
            ),
            None
        );
    }

    #[test]
    fn a_retry_prefers_untried_members_then_reuses_tried_ones() {
        let m = members(&["order: 1", "order: 1", "order: 2"]);
        let s = shares(RoutingStrategy::SimpleShuffle, &m, &[0], 8);
        assert_eq!(s, vec![0.0, 1.0, 0.0]);
        // Every order-1 member tried: the order-2 one gets the retry.
        let s = shares(RoutingStrategy::SimpleShuffle, &m, &[0, 1], 8);
        assert_eq!(s, vec![0.0, 0.0, 1.0]);
        // Everything tried: back to the normal choice.
        let s = shares(RoutingStrategy::SimpleShuffle, &m, &[0, 1, 2], 8);
        assert_close(&s, &[0.5, 0.5, 0.0]);
    }

    #[test]
    fn cooling_members_are_skipped_and_come_back_after_the_cooldown() {
        let m = members(&["", ""]);
        assert!(
            m[0].stats
                .record_failure(Instant::now(), 0, Duration::from_secs(60))
        );
        let s = shares(RoutingStrategy::SimpleShuffle, &m, &[], 9);
        assert_eq!(s, vec![0.0, 1.0]);
        let later = Instant::now() + Duration::from_secs(61);
        let mut rng = StdRng::seed_from_u64(9);
        let mut seen = [false; 2];
        for _ in 0..200 {
            seen[pick_with(RoutingStrategy::SimpleShuffle, &m, &[], later, &mut rng).unwrap()] =
                true;
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn a_single_member_is_picked_unless_cooling() {
        let m = members(&[""]);
        assert_eq!(
            pick(RoutingStrategy::LeastBusy, &m, &[0], Instant::now()),
            Some(0)
        );
        cool_down(&m[0]);
        assert_eq!(
            pick(RoutingStrategy::LeastBusy, &m, &[], Instant::now()),
            None
        );
    }
}
