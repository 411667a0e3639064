//! Deployment selection for each routing strategy; pure functions over the live stats.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rand::RngExt;

use super::Member;
use crate::config::RoutingStrategy;

/// Share of picks that `latency-based-routing` spends exploring at random, so a deployment
/// that was slow once gets measured again.
const EXPLORATION: f64 = 0.1;

/// Picks a member index: skips cooling-down members and, while others remain, those already
/// tried; keeps only the lowest `order`; then applies the strategy. `None` when every member
/// is cooling down.
pub fn pick(
    strategy: RoutingStrategy,
    members: &[Arc<Member>],
    tried: &[usize],
    now: Instant,
) -> Option<usize> {
    let available: Vec<usize> = (0..members.len())
        .filter(|i| members[*i].stats.cooling_until(now).is_none())
        .collect();
    if available.is_empty() {
        return None;
    }
    let untried: Vec<usize> = available
        .iter()
        .copied()
        .filter(|i| !tried.contains(i))
        .collect();
    let pool = if untried.is_empty() {
        available
    } else {
        untried
    };
    let best_order = pool
        .iter()
        .map(|i| members[*i].deployment.order.unwrap_or(u32::MAX))
        .min()
        .unwrap_or(u32::MAX);
    let pool: Vec<usize> = pool
        .into_iter()
        .filter(|i| members[*i].deployment.order.unwrap_or(u32::MAX) == best_order)
        .collect();
    if pool.len() == 1 {
        return pool.first().copied();
    }
    let mut rng = rand::rng();
    match strategy {
        RoutingStrategy::SimpleShuffle | RoutingStrategy::UsageBased => {
            let weights: Vec<f64> = pool.iter().map(|i| weight(&members[*i])).collect();
            let total: f64 = weights.iter().sum();
            if total <= 0.0 {
                return pool.get(rng.random_range(0..pool.len())).copied();
            }
            let mut target = rng.random::<f64>() * total;
            for (i, w) in pool.iter().zip(weights) {
                if target < w {
                    return Some(*i);
                }
                target -= w;
            }
            pool.last().copied()
        }
        RoutingStrategy::LeastBusy => {
            let least = pool
                .iter()
                .map(|i| members[*i].stats.in_flight.load(Ordering::Relaxed))
                .min()
                .unwrap_or(0);
            let ties: Vec<usize> = pool
                .into_iter()
                .filter(|i| members[*i].stats.in_flight.load(Ordering::Relaxed) == least)
                .collect();
            ties.get(rng.random_range(0..ties.len())).copied()
        }
        RoutingStrategy::LatencyBased => {
            if rng.random::<f64>() < EXPLORATION {
                return pool.get(rng.random_range(0..pool.len())).copied();
            }
            // Unmeasured deployments (latency 0) come first, so each gets measured.
            pool.into_iter()
                .min_by_key(|i| members[*i].stats.latency_us.load(Ordering::Relaxed))
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
