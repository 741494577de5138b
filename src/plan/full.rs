//! Full or incremental (policy.md section 3), as a pure decision: the runner calls it with the
//! catalog's chain, and `ovplan next` with a simulated chain in which every run succeeded.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use chrono_tz::Tz;

use super::model::{FullFrequency, FullPolicy};
use super::schedule::{on_week, resolve};

/// A backup point's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A standalone image of every disk.
    Full,
    /// Only the blocks changed since the previous point.
    Incremental,
}

impl Kind {
    /// `full` or `incremental`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Incremental => "incremental",
        }
    }
}

/// The chain the next point would extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// When its full backup was taken.
    pub full_at: DateTime<Utc>,
    /// How many incrementals follow the full.
    pub incrementals: u32,
}

/// Why a point is full or incremental (the rule of section 3 that decided).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Rule 1.
    IncrementalDisabled,
    /// Rule 2.
    NoChain,
    /// Rule 3: a full is due by the frequency since this local date.
    FrequencyDue(FullFrequency),
    /// Rule 4.
    ChainFull,
    /// Rule 5.
    FullTooOld,
    /// No rule asks for a full.
    ChainContinues,
}

/// Decides the kind of the point taken at `at`, for a VM whose schedule is in `zone`.
pub fn decide(
    policy: &FullPolicy,
    zone: Tz,
    at: DateTime<Utc>,
    chain: Option<Chain>,
) -> (Kind, Reason) {
    if !policy.incremental_enabled {
        return (Kind::Full, Reason::IncrementalDisabled);
    }
    let Some(chain) = chain else {
        return (Kind::Full, Reason::NoChain);
    };
    if frequency_due(policy, zone, at, chain.full_at) {
        return (Kind::Full, Reason::FrequencyDue(policy.frequency));
    }
    if chain.incrementals >= policy.max_chain_length {
        return (Kind::Full, Reason::ChainFull);
    }
    let max_age = chrono::Duration::days(i64::from(policy.force_full_after_days));
    if policy.force_full_after_days > 0 && at - chain.full_at >= max_age {
        return (Kind::Full, Reason::FullTooOld);
    }
    (Kind::Incremental, Reason::ChainContinues)
}

/// Rule 3: whether no full exists since the frequency's latest boundary at or before `at`.
fn frequency_due(policy: &FullPolicy, zone: Tz, at: DateTime<Utc>, full_at: DateTime<Utc>) -> bool {
    let today = at.with_timezone(&zone).date_naive();
    let boundary = match policy.frequency {
        FullFrequency::Daily => return true,
        FullFrequency::Never => return false,
        FullFrequency::Weekly => latest_day(today, |d| d.weekday() == policy.day),
        FullFrequency::Biweekly => latest_day(today, |d| {
            d.weekday() == policy.day && on_week(d, policy.anchor)
        }),
        FullFrequency::Monthly => today.with_day(1),
    };
    boundary
        .and_then(|day| midnight(zone, day))
        .is_some_and(|b| full_at < b)
}

/// The latest date at or before `today` that satisfies `matches`, within three weeks.
fn latest_day(today: NaiveDate, matches: impl Fn(NaiveDate) -> bool) -> Option<NaiveDate> {
    (0..21)
        .filter_map(|n| today.checked_sub_days(Days::new(n)))
        .find(|d| matches(*d))
}

/// The first instant of a local date (00:00, or the end of a gap that swallowed midnight).
fn midnight(zone: Tz, day: NaiveDate) -> Option<DateTime<Utc>> {
    (0..24 * 4).find_map(|quarter| {
        let time = chrono::NaiveTime::from_hms_opt(quarter / 4, (quarter % 4) * 15, 0)?;
        resolve(zone, day.and_time(time)).map(|t| t.with_timezone(&Utc))
    })
}

/// The kinds of successive runs, assuming each succeeds, starting with no chain.
pub fn predict(policy: &FullPolicy, zone: Tz, runs: &[DateTime<Utc>]) -> Vec<Kind> {
    let mut chain: Option<Chain> = None;
    runs.iter()
        .map(|at| {
            let (kind, _) = decide(policy, zone, *at, chain);
            chain = Some(match (kind, chain) {
                (Kind::Incremental, Some(c)) => Chain {
                    incrementals: c.incrementals + 1,
                    ..c
                },
                _ => Chain {
                    full_at: *at,
                    incrementals: 0,
                },
            });
            kind
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;

    fn policy(frequency: FullFrequency) -> FullPolicy {
        FullPolicy {
            incremental_enabled: true,
            frequency,
            day: Weekday::Sun,
            anchor: super::super::model::default_anchor(),
            max_chain_length: 10,
            force_full_after_days: 0,
        }
    }

    fn daily_runs(from: &str, days: u32) -> Vec<DateTime<Utc>> {
        let start = DateTime::parse_from_rfc3339(from)
            .expect("RFC 3339")
            .with_timezone(&Utc);
        (0..days)
            .map(|d| start + chrono::Duration::days(i64::from(d)))
            .collect()
    }

    fn kinds(kinds: &[Kind]) -> String {
        kinds
            .iter()
            .map(|k| if *k == Kind::Full { 'F' } else { 'i' })
            .collect()
    }

    #[test]
    fn weekly_full_on_the_first_run_since_sunday() {
        // 2026-11-26 is a Thursday.
        let runs = daily_runs("2026-11-26T02:00:00Z", 10);
        assert_eq!(
            kinds(&predict(&policy(FullFrequency::Weekly), Tz::UTC, &runs)),
            "FiiFiiiiiiF"[..10].to_owned()
        );
    }

    #[test]
    fn chain_length_and_age_force_fulls() {
        let mut p = policy(FullFrequency::Never);
        p.max_chain_length = 2;
        let runs = daily_runs("2026-11-26T02:00:00Z", 7);
        assert_eq!(kinds(&predict(&p, Tz::UTC, &runs)), "FiiFiiF");
        p.max_chain_length = 100;
        p.force_full_after_days = 3;
        assert_eq!(kinds(&predict(&p, Tz::UTC, &runs)), "FiiFiiF");
    }

    #[test]
    fn monthly_and_disabled() {
        let runs = daily_runs("2026-11-29T02:00:00Z", 4);
        assert_eq!(
            kinds(&predict(&policy(FullFrequency::Monthly), Tz::UTC, &runs)),
            "FiFi"
        );
        let mut p = policy(FullFrequency::Never);
        p.incremental_enabled = false;
        assert_eq!(kinds(&predict(&p, Tz::UTC, &runs)), "FFFF");
    }
}
