//! Schedules as instants: which local dates a schedule fires on, the instants after a moment,
//! and the due-guard that lets a unit fire on a superset of the schedule.
//!
//! Local times follow systemd's calendar rules, so that `ovplan next` and the compiled timers
//! agree to the second: a local time that does not exist (the hour skipped when clocks go
//! forward) does not fire that day; a local time that exists twice fires at the first.

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;

use super::cron::{CronProblem, CronSpec};
use super::model::{MonthDay, Rule, Schedule, WeekOfMonth};

/// How far a search for the next or previous instant looks, in days: beyond every rule's period
/// (a leap day in a listed month recurs within eight years).
const SEARCH_DAYS: u64 = 366 * 8 + 2;

/// A schedule made ready for evaluation in a time zone.
#[derive(Debug, Clone)]
pub struct Calendar {
    days: DayRule,
    times: Vec<NaiveTime>,
    zone: Tz,
}

#[derive(Debug, Clone)]
enum DayRule {
    Rule(Rule),
    Cron(Box<CronSpec>),
}

impl Calendar {
    /// The calendar of a schedule in `zone` (the schedule's own zone, resolved by the caller).
    ///
    /// # Errors
    /// A cron expression that does not parse (validation refuses those first).
    pub fn new(schedule: &Schedule, zone: Tz) -> Result<Self, CronProblem> {
        Self::of_rule(&schedule.rule, schedule.time, zone)
    }

    /// The calendar of a rule at a time of day.
    ///
    /// # Errors
    /// A cron expression that does not parse.
    pub fn of_rule(rule: &Rule, time: NaiveTime, zone: Tz) -> Result<Self, CronProblem> {
        Ok(match rule {
            Rule::Cron(expression) => {
                let spec = CronSpec::parse(expression)?;
                Self {
                    times: spec.times(),
                    days: DayRule::Cron(Box::new(spec)),
                    zone,
                }
            }
            other => Self {
                days: DayRule::Rule(other.clone()),
                times: vec![time],
                zone,
            },
        })
    }

    /// The zone its local times are in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Whether it fires at some time on a local date.
    pub fn fires_on(&self, date: NaiveDate) -> bool {
        match &self.days {
            DayRule::Rule(rule) => rule_fires_on(rule, date),
            DayRule::Cron(spec) => spec.fires_on(date),
        }
    }

    /// Whether `at` is one of its instants.
    pub fn includes(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.zone).naive_local();
        self.fires_on(local.date())
            && self.times.contains(&local.time())
            && resolve(self.zone, local).is_some_and(|t| t == at)
    }

    /// Its instants on one local date, ascending.
    fn instants_on(&self, date: NaiveDate) -> impl Iterator<Item = DateTime<Tz>> + '_ {
        let fires = self.fires_on(date);
        self.times
            .iter()
            .filter(move |_| fires)
            .filter_map(move |time| resolve(self.zone, date.and_time(*time)))
    }

    /// Its instants strictly after `after`, ascending, looking at most eight years ahead.
    pub fn after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Tz>> + '_ {
        let start = after.with_timezone(&self.zone).date_naive();
        (0..SEARCH_DAYS)
            .filter_map(move |n| start.checked_add_days(Days::new(n)))
            .flat_map(move |date| self.instants_on(date).collect::<Vec<_>>())
            .filter(move |t| *t > after)
    }

    /// Its latest instant at or before `at`, looking at most eight years back.
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Tz>> {
        let start = at.with_timezone(&self.zone).date_naive();
        (0..SEARCH_DAYS)
            .filter_map(|n| start.checked_sub_days(Days::new(n)))
            .find_map(|date| self.instants_on(date).filter(|t| *t <= at).last())
    }
}

/// A local date and time in a zone, by systemd's rules: `None` when it does not exist, the
/// earlier instant when it exists twice.
pub fn resolve(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Tz>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t),
        LocalResult::None => None,
    }
}

/// Whether a (non-cron) rule fires on a date.
pub fn rule_fires_on(rule: &Rule, date: NaiveDate) -> bool {
    let weekday = date.weekday();
    match rule {
        Rule::Daily => true,
        Rule::Weekdays => weekday.num_days_from_monday() < 5,
        Rule::Weekends => weekday.num_days_from_monday() >= 5,
        Rule::Weekly(days) => days.contains(&weekday),
        Rule::Biweekly { day, anchor } => weekday == *day && on_week(date, *anchor),
        Rule::Monthly(day) => month_day_is(*day, date),
        Rule::DaysOfMonth { days, months } => {
            in_months(months, date) && days.iter().any(|d| month_day_is(*d, date))
        }
        Rule::NthWeekdays {
            weekdays,
            weeks,
            months,
        } => {
            in_months(months, date)
                && weekdays.contains(&weekday)
                && weeks.iter().any(|w| week_is(*w, date))
        }
        Rule::Cron(expression) => CronSpec::parse(expression).is_ok_and(|spec| spec.fires_on(date)),
    }
}

/// Whether `date` is in an on-week: every second ISO week counted from the week of `anchor`.
pub fn on_week(date: NaiveDate, anchor: NaiveDate) -> bool {
    let weeks = (monday_of(date) - monday_of(anchor)).num_days() / 7;
    weeks.rem_euclid(2) == 0
}

/// The Monday of a date's ISO week.
pub fn monday_of(date: NaiveDate) -> NaiveDate {
    date - chrono::Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

fn in_months(months: &[u32], date: NaiveDate) -> bool {
    months.is_empty() || months.contains(&date.month())
}

fn month_day_is(day: MonthDay, date: NaiveDate) -> bool {
    match day {
        MonthDay::Day(n) => date.day() == n,
        MonthDay::Last => is_last_day(date),
    }
}

fn is_last_day(date: NaiveDate) -> bool {
    date.succ_opt()
        .is_none_or(|next| next.month() != date.month())
}

fn week_is(week: WeekOfMonth, date: NaiveDate) -> bool {
    match week {
        WeekOfMonth::Nth(n) => (date.day() - 1) / 7 + 1 == n,
        WeekOfMonth::Last => date
            .checked_add_days(Days::new(7))
            .is_none_or(|d| d.month() != date.month()),
    }
}

/// The rule a compiled unit fires on when its calendar language cannot say `rule` exactly in
/// both systemd and cron (biweekly in either; "last" and n-th weekdays in cron). It fires at the
/// same times of day, on a superset of the days; `None` when every target says `rule` exactly.
pub fn guard_superset(rule: &Rule) -> Option<Rule> {
    match rule {
        Rule::Biweekly { day, .. } => Some(Rule::Weekly(vec![*day])),
        Rule::Monthly(MonthDay::Last) => Some(Rule::DaysOfMonth {
            days: last_days(),
            months: Vec::new(),
        }),
        Rule::DaysOfMonth { days, months } if days.contains(&MonthDay::Last) => {
            let mut days: Vec<MonthDay> = days
                .iter()
                .copied()
                .filter(|d| *d != MonthDay::Last)
                .collect();
            days.extend(last_days());
            days.sort_unstable();
            days.dedup();
            Some(Rule::DaysOfMonth {
                days,
                months: months.clone(),
            })
        }
        Rule::NthWeekdays {
            weekdays,
            weeks,
            months,
        } if weeks.len() < 5 || weeks.contains(&WeekOfMonth::Last) => Some(Rule::NthWeekdays {
            weekdays: weekdays.clone(),
            weeks: (1..=5).map(WeekOfMonth::Nth).collect(),
            months: months.clone(),
        }),
        _ => None,
    }
}

/// Days 28 to 31: every month's last day is one of them.
fn last_days() -> Vec<MonthDay> {
    (28..=31).map(MonthDay::Day).collect()
}

/// Whether a start at some instant is due, and which scheduled run it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Run the backup.
    pub due: bool,
    /// The unit's scheduled start this start belongs to (the latest at or before it).
    pub serves: Option<DateTime<Tz>>,
    /// Why, for the log.
    pub why: String,
}

/// Decides whether a start at `at` is due: the latest start of the unit's calendar (`superset`,
/// or the schedule itself) at or before `at` must be an instant of the schedule. A late start
/// (a timer catching up after downtime) is judged by the run it catches up.
pub fn due(schedule: &Calendar, superset: Option<&Calendar>, at: DateTime<Utc>) -> Due {
    let unit = superset.unwrap_or(schedule);
    let Some(serves) = unit.latest_at_or_before(at) else {
        return Due {
            due: false,
            serves: None,
            why: format!(
                "not due: the schedule has no run at or before {}",
                at.with_timezone(&schedule.zone).to_rfc3339()
            ),
        };
    };
    let utc = serves.with_timezone(&Utc);
    if schedule.includes(utc) {
        Due {
            due: true,
            serves: Some(serves),
            why: format!(
                "due: this start serves the run scheduled at {}",
                serves.to_rfc3339()
            ),
        }
    } else {
        Due {
            due: false,
            serves: Some(serves),
            why: format!(
                "not due: the unit fired for {}, a day its calendar language had to include, but the schedule does not run then",
                serves.to_rfc3339()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("RFC 3339")
            .with_timezone(&Utc)
    }

    fn two_am(rule: Rule, zone: Tz) -> Calendar {
        Calendar::of_rule(&rule, NaiveTime::from_hms_opt(2, 0, 0).expect("time"), zone)
            .expect("calendar")
    }

    #[test]
    fn rules_pick_their_days() {
        let anchor = date(2024, 1, 1);
        let cases: &[(Rule, NaiveDate, bool)] = &[
            (Rule::Weekdays, date(2026, 11, 27), true),
            (Rule::Weekdays, date(2026, 11, 28), false),
            (Rule::Biweekly { day: Mon, anchor }, date(2024, 1, 15), true),
            (Rule::Biweekly { day: Mon, anchor }, date(2024, 1, 8), false),
            (
                Rule::Biweekly { day: Mon, anchor },
                date(2023, 12, 18),
                true,
            ),
            (Rule::Monthly(MonthDay::Last), date(2024, 2, 29), true),
            (Rule::Monthly(MonthDay::Day(31)), date(2024, 4, 30), false),
            (
                Rule::NthWeekdays {
                    weekdays: vec![Fri],
                    weeks: vec![WeekOfMonth::Nth(2)],
                    months: vec![],
                },
                date(2026, 11, 13),
                true,
            ),
            (
                Rule::NthWeekdays {
                    weekdays: vec![Fri],
                    weeks: vec![WeekOfMonth::Last],
                    months: vec![],
                },
                date(2026, 11, 27),
                true,
            ),
            (
                Rule::NthWeekdays {
                    weekdays: vec![Fri],
                    weeks: vec![WeekOfMonth::Last],
                    months: vec![],
                },
                date(2026, 11, 20),
                false,
            ),
        ];
        for (rule, day, fires) in cases {
            assert_eq!(rule_fires_on(rule, *day), *fires, "{rule:?} on {day}");
        }
    }

    #[test]
    fn skipped_local_times_do_not_fire_and_repeated_ones_fire_once() {
        let lisbon: Tz = "Europe/Lisbon".parse().expect("zone");
        let cal = Calendar::of_rule(
            &Rule::Daily,
            NaiveTime::from_hms_opt(1, 30, 0).expect("time"),
            lisbon,
        )
        .expect("calendar");
        let spring: Vec<String> = cal
            .after(at("2026-03-28T12:00:00Z"))
            .take(2)
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            spring,
            ["2026-03-30T01:30:00+01:00", "2026-03-31T01:30:00+01:00"]
        );
        let autumn: Vec<String> = cal
            .after(at("2026-10-24T12:00:00Z"))
            .take(2)
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            autumn,
            ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"]
        );
    }

    #[test]
    fn the_guard_skips_off_weeks_and_serves_late_starts() {
        let rule = Rule::Biweekly {
            day: Mon,
            anchor: date(2024, 1, 1),
        };
        let schedule = two_am(rule.clone(), Tz::UTC);
        let superset = two_am(guard_superset(&rule).expect("guarded"), Tz::UTC);
        assert!(due(&schedule, Some(&superset), at("2024-01-15T02:00:00Z")).due);
        assert!(!due(&schedule, Some(&superset), at("2024-01-08T02:00:01Z")).due);
        let late = due(&schedule, Some(&superset), at("2024-01-17T09:00:00Z"));
        assert!(late.due, "{}", late.why);
    }

    #[test]
    fn exact_rules_need_no_guard() {
        assert_eq!(guard_superset(&Rule::Daily), None);
        assert_eq!(guard_superset(&Rule::Monthly(MonthDay::Day(3))), None);
        assert!(guard_superset(&Rule::Monthly(MonthDay::Last)).is_some());
    }
}
