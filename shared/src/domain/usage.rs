//! Spend limits (SPEC §8.7): a story's `budget_usd` and a monthly cap per user. Every paid job
//! reserves its estimate in the same atomic write that starts it, and settles to its actual cost
//! in the same atomic write that ends it. The store keeps, per story and per user-month, what is
//! *committed* (spent + still reserved) and what is *spent*, in whole micro-dollars so that sums
//! are exact on both backends.
//!
//! A job carries its [`Reservation`] through three states, advanced only by [`advance`], which
//! the stores call inside their atomic writes: `requested` (the service asks) → `held` (the write
//! that starts the job reserved it) → `settled` (the write that ended it settled it). A state moves
//! once per job version, and job versions are written once, so a duplicate delivery or a crash
//! between steps can neither reserve nor settle twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::error::Error;
use crate::domain::ids::{StoryId, UserId};
use crate::domain::job::Job;
use crate::domain::pricing::round_usd;

/// Micro-dollars: what the store counts in.
pub fn micros(usd: f64) -> i64 {
    (usd * 1_000_000.0).round() as i64
}

/// Dollars from micro-dollars, rounded as every other amount the API shows.
pub fn usd(micros: i64) -> f64 {
    round_usd(micros as f64 / 1_000_000.0)
}

/// The calendar month (UTC) a reservation counts in: `2026-12`.
pub fn month_of(at: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", at.year(), at.month())
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Asked for by the start; not yet written.
    Requested,
    /// Counted in the limits.
    Held,
    /// Replaced by the job's actual cost.
    Settled,
}

/// What a paid job holds against its story's budget and its owner's month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    /// The month it counts in.
    pub month: String,
    /// The estimate reserved (the clip's seconds at the price the render started with).
    pub amount_usd: f64,
    /// Where it is.
    pub state: ReservationState,
    /// The story's budget when the work started (none: no story limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub story_budget_usd: Option<f64>,
    /// The owner's monthly cap when the work started (none: no cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_cap_usd: Option<f64>,
}

impl Reservation {
    /// A reservation of `amount_usd` asked for at `at` under these limits.
    pub fn requested(amount_usd: f64, at: DateTime<Utc>, limits: &Limits) -> Self {
        Self {
            month: month_of(at),
            amount_usd: round_usd(amount_usd.max(0.0)),
            state: ReservationState::Requested,
            story_budget_usd: limits.story_budget_usd,
            monthly_cap_usd: limits.monthly_cap_usd,
        }
    }
}

/// The limits a start is checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// The story's `budget_usd`.
    pub story_budget_usd: Option<f64>,
    /// The owner's cap for the month.
    pub monthly_cap_usd: Option<f64>,
}

/// Which limit a start would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// The story's budget.
    Story,
    /// The owner's monthly cap.
    Monthly,
}

impl LimitKind {
    /// The API's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Story => "story",
            LimitKind::Monthly => "monthly",
        }
    }
}

/// A counter the store keeps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum UsageKey {
    /// A story's spend.
    Story(StoryId),
    /// An owner's spend in a month.
    Monthly(UserId, String),
}

impl UsageKey {
    /// The limit this counter is checked against.
    pub fn limit_kind(&self) -> LimitKind {
        match self {
            UsageKey::Story(_) => LimitKind::Story,
            UsageKey::Monthly(..) => LimitKind::Monthly,
        }
    }
}

/// The counters as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Spent plus still reserved.
    pub committed_micros: i64,
    /// Spent.
    pub spent_micros: i64,
}

impl Counters {
    /// Still reserved.
    pub fn reserved_micros(&self) -> i64 {
        (self.committed_micros - self.spent_micros).max(0)
    }
}

/// One write's change to one counter.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageChange {
    /// The counter.
    pub key: UsageKey,
    /// Added to `committed`.
    pub committed_micros: i64,
    /// Added to `spent`.
    pub spent_micros: i64,
    /// For reservations: the most `committed` may be before this change (limit − what this write
    /// reserves), with the limit and what it reserves; `None`: no limit to check.
    pub check: Option<LimitCheck>,
}

/// What a reservation must fit under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitCheck {
    /// The limit, micro-dollars.
    pub limit_micros: i64,
    /// What this write reserves against it.
    pub reserving_micros: i64,
}

impl LimitCheck {
    /// The most `committed` may be before the change.
    pub fn max_committed_before(&self) -> i64 {
        self.limit_micros - self.reserving_micros
    }

    /// The refusal when `current` does not leave room.
    pub fn refusal(&self, kind: LimitKind, current: &Counters) -> Error {
        Error::BudgetExceeded {
            limit: kind,
            estimate_usd: usd(self.reserving_micros),
            remaining_usd: usd((self.limit_micros - current.committed_micros).max(0)),
        }
    }

    /// Whether `current` leaves room.
    pub fn admits(&self, current: &Counters) -> bool {
        current.committed_micros <= self.max_committed_before()
    }
}

/// Asks `job` to reserve its estimate — its clip's seconds at the price its render started with —
/// under `limits`; free work (no clip, a free provider) reserves nothing.
pub fn request_reservation(job: &mut Job, limits: &Limits, at: DateTime<Utc>) {
    let estimate = match (&job.clip, &job.render) {
        (Some(clip), Some(render)) => {
            crate::domain::pricing::clip_cost(clip.duration_seconds, render.terms.price_per_second_usd)
        }
        _ => 0.0,
    };
    job.reservation = (estimate > 0.0).then(|| Reservation::requested(estimate, at, limits));
}

/// Advances the reservations of `jobs` about to be written (requested → held; held → settled for
/// a job that ended) and returns what the write must add to each counter, one change per counter.
pub fn advance(jobs: &mut [Job]) -> Vec<UsageChange> {
    let mut changes: BTreeMap<UsageKey, UsageChange> = BTreeMap::new();
    let mut add = |key: UsageKey, committed: i64, spent: i64, limit: Option<f64>| {
        let change = changes.entry(key.clone()).or_insert(UsageChange {
            key,
            committed_micros: 0,
            spent_micros: 0,
            check: None,
        });
        change.committed_micros += committed;
        change.spent_micros += spent;
        if let Some(limit) = limit {
            let check = change.check.get_or_insert(LimitCheck { limit_micros: micros(limit), reserving_micros: 0 });
            // The tightest limit any job of the write was started under.
            check.limit_micros = check.limit_micros.min(micros(limit));
            check.reserving_micros += committed;
        }
    };
    for job in jobs.iter_mut() {
        let Some(reservation) = job.reservation.as_mut() else {
            continue;
        };
        let keys = [
            (UsageKey::Story(job.story.clone()), reservation.story_budget_usd),
            (UsageKey::Monthly(job.owner.clone(), reservation.month.clone()), reservation.monthly_cap_usd),
        ];
        match reservation.state {
            ReservationState::Requested => {
                reservation.state = ReservationState::Held;
                let amount = micros(reservation.amount_usd);
                for (key, limit) in keys {
                    add(key, amount, 0, limit);
                }
            }
            ReservationState::Held if job.status.is_terminal() => {
                reservation.state = ReservationState::Settled;
                let (amount, cost) = (micros(reservation.amount_usd), micros(job.cost_usd));
                for (key, _) in keys {
                    add(key, cost - amount, cost, None);
                }
            }
            _ => {}
        }
    }
    changes.into_values().filter(|c| c.committed_micros != 0 || c.spent_micros != 0 || c.check.is_some()).collect()
}

/// A user's figures for a month, as `usage/` answers them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// Whose.
    pub user: UserId,
    /// Which month.
    pub month: String,
    /// Spent (jobs that ended).
    pub spent_usd: f64,
    /// Still reserved by jobs under way.
    pub reserved_usd: f64,
    /// The cap (none: no cap).
    pub cap_usd: Option<f64>,
    /// What the cap leaves (none without a cap).
    pub remaining_usd: Option<f64>,
}

impl Usage {
    /// The figures of `counters` under `cap`.
    pub fn of(user: UserId, month: String, counters: Counters, cap_usd: Option<f64>) -> Self {
        Self {
            user,
            month,
            spent_usd: usd(counters.spent_micros),
            reserved_usd: usd(counters.reserved_micros()),
            cap_usd,
            remaining_usd: cap_usd.map(|cap| usd((micros(cap) - counters.committed_micros).max(0))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_counted_in_whole_micro_dollars() {
        assert_eq!(micros(0.1) + micros(0.2), micros(0.3));
        assert_eq!(usd(micros(12.3456)), 12.3456);
        assert_eq!(month_of("2026-12-31T23:59:59Z".parse().unwrap()), "2026-12");
    }

    #[test]
    fn a_check_admits_exactly_what_fits() {
        let check = LimitCheck { limit_micros: micros(1.0), reserving_micros: micros(0.4) };
        assert!(check.admits(&Counters { committed_micros: micros(0.6), spent_micros: 0 }));
        assert!(!check.admits(&Counters { committed_micros: micros(0.61), spent_micros: 0 }));
        let refusal = check.refusal(LimitKind::Monthly, &Counters { committed_micros: micros(0.7), spent_micros: 0 });
        assert!(
            matches!(refusal, Error::BudgetExceeded { limit: LimitKind::Monthly, remaining_usd, .. } if (remaining_usd - 0.3).abs() < 1e-9)
        );
    }
}
