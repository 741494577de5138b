//! Schedules in the two calendar languages the bundle speaks: systemd's `OnCalendar=` and cron's
//! five fields. Each says the schedule exactly where it can, and otherwise its due-guard
//! superset (`schedule::guard_superset`), leaving the rest to `ovrun due`.

use chrono::{NaiveTime, Timelike, Weekday};

use super::cron::{CronProblem, CronSpec};
use super::model::{MonthDay, Rule, Schedule, WeekOfMonth};
use super::schedule::guard_superset;

/// The `OnCalendar=` values of a schedule (its time zone, if any, appended), and whether the
/// unit needs the due-guard.
///
/// # Errors
/// A cron expression that does not parse (validation refuses those first).
pub fn systemd(schedule: &Schedule) -> Result<(Vec<String>, bool), CronProblem> {
    let guarded = matches!(schedule.rule, Rule::Biweekly { .. });
    let rule = match &schedule.rule {
        Rule::Biweekly { day, .. } => Rule::Weekly(vec![*day]),
        other => other.clone(),
    };
    let zone = schedule
        .timezone
        .as_ref()
        .map(|z| format!(" {z}"))
        .unwrap_or_default();
    let lines = match &rule {
        Rule::Cron(expression) => systemd_cron(&CronSpec::parse(expression)?),
        other => systemd_days(other)
            .into_iter()
            .map(|days| format!("{days} {}", hms(schedule.time)))
            .collect(),
    };
    Ok((
        lines.into_iter().map(|l| format!("{l}{zone}")).collect(),
        guarded,
    ))
}

/// The date parts (`[WEEKDAYS ]YEAR-MONTH-DAY`) of a non-cron rule, one per line needed.
fn systemd_days(rule: &Rule) -> Vec<String> {
    match rule {
        Rule::Daily => vec!["*-*-*".into()],
        Rule::Weekdays => vec!["Mon..Fri *-*-*".into()],
        Rule::Weekends => vec!["Sat,Sun *-*-*".into()],
        Rule::Weekly(days) => vec![format!("{} *-*-*", weekdays(days))],
        Rule::Monthly(day) => vec![month_day(*day, "*")],
        Rule::DaysOfMonth { days, months } => days_of_month(days, months),
        Rule::NthWeekdays {
            weekdays: days,
            weeks,
            months,
        } => nth_weekdays(days, weeks, months),
        Rule::Biweekly { .. } | Rule::Cron(_) => unreachable!("handled by the caller"),
    }
}

/// Numbered days share one line; the last day of the month needs its own (`~01`).
fn days_of_month(days: &[MonthDay], months: &[u32]) -> Vec<String> {
    let months = month_list(months);
    let numbered: Vec<String> = days
        .iter()
        .filter_map(|d| day_number(*d))
        .map(|n| format!("{n:02}"))
        .collect();
    let mut lines = Vec::new();
    if !numbered.is_empty() {
        lines.push(format!("*-{months}-{}", numbered.join(",")));
    }
    if days.contains(&MonthDay::Last) {
        lines.push(month_day(MonthDay::Last, &months));
    }
    lines
}

/// One line per week of the month: the nth week is days 7n-6 to 7n, the last is the last 7.
fn nth_weekdays(days: &[Weekday], weeks: &[WeekOfMonth], months: &[u32]) -> Vec<String> {
    let months = month_list(months);
    let days = weekdays(days);
    weeks
        .iter()
        .map(|week| match week {
            WeekOfMonth::Nth(n) => {
                format!("{days} *-{months}-{:02}..{:02}", 7 * n - 6, (7 * n).min(31))
            }
            WeekOfMonth::Last => format!("{days} *-{months}~07/1"),
        })
        .collect()
}

fn day_number(day: MonthDay) -> Option<u32> {
    match day {
        MonthDay::Day(n) => Some(n),
        MonthDay::Last => None,
    }
}

fn month_day(day: MonthDay, months: &str) -> String {
    match day {
        MonthDay::Day(n) => format!("*-{months}-{n:02}"),
        MonthDay::Last => format!("*-{months}~01"),
    }
}

fn month_list(months: &[u32]) -> String {
    let listed: Vec<String> = months.iter().map(|m| format!("{m:02}")).collect();
    if listed.is_empty() {
        return "*".into();
    }
    listed.join(",")
}

fn weekdays(days: &[Weekday]) -> String {
    days.iter()
        .map(|d| short_name(*d))
        .collect::<Vec<_>>()
        .join(",")
}

fn short_name(day: Weekday) -> &'static str {
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][day.num_days_from_monday() as usize]
}

fn hms(time: NaiveTime) -> String {
    format!("{:02}:{:02}:00", time.hour(), time.minute())
}

/// A cron expression in `OnCalendar=` form, field by field as explicit lists. When both day
/// fields are restricted, cron fires on either, which systemd says as two lines.
fn systemd_cron(spec: &CronSpec) -> Vec<String> {
    let [minutes, hours, days, months, dows] = spec.sets();
    let list = |values: &[u16], full: usize| {
        if values.len() == full {
            "*".to_owned()
        } else {
            values
                .iter()
                .map(|v| format!("{v:02}"))
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let time = format!("{}:{}:00", list(&hours, 24), list(&minutes, 60));
    let months = list(&months, 12);
    let days = list(&days, 31);
    let dows: Vec<Weekday> = dows.iter().map(|d| sunday_first(*d)).collect();
    let dows = sorted_monday_first(dows);
    let on_days = format!("*-{months}-{days} {time}");
    let on_weekdays = format!("{} *-{months}-* {time}", weekdays(&dows));
    match (spec.any_day_of_month(), spec.any_day_of_week()) {
        (_, true) => vec![on_days],
        (true, false) => vec![on_weekdays],
        (false, false) => vec![on_weekdays, on_days],
    }
}

fn sunday_first(day: u16) -> Weekday {
    super::names::weekday_from_monday((usize::from(day) + 6) % 7)
}

fn sorted_monday_first(mut days: Vec<Weekday>) -> Vec<Weekday> {
    days.sort_by_key(Weekday::num_days_from_monday);
    days.dedup();
    days
}

/// The cron lines (five fields each) of a schedule, and whether the entry needs the due-guard.
/// Cron has no time zone per line: the caller groups entries under `CRON_TZ=`.
pub fn cron(schedule: &Schedule) -> (Vec<String>, bool) {
    if let Rule::Cron(expression) = &schedule.rule {
        return (vec![expression.clone()], false);
    }
    let superset = guard_superset(&schedule.rule);
    let rule = superset.as_ref().unwrap_or(&schedule.rule);
    let time = format!("{} {}", schedule.time.minute(), schedule.time.hour());
    let lines = cron_days(rule)
        .into_iter()
        .map(|days| format!("{time} {days}"))
        .collect();
    (lines, superset.is_some())
}

/// The `dom month dow` fields of a rule cron can say exactly (a superset was chosen before).
fn cron_days(rule: &Rule) -> Vec<String> {
    match rule {
        Rule::Daily => vec!["* * *".into()],
        Rule::Weekdays => vec!["* * 1-5".into()],
        Rule::Weekends => vec!["* * 6,0".into()],
        Rule::Weekly(days) => vec![format!("* * {}", cron_weekdays(days))],
        Rule::Monthly(day) => vec![format!("{} * *", day_number(*day).unwrap_or(28))],
        Rule::DaysOfMonth { days, months } => {
            let days: Vec<String> = days
                .iter()
                .filter_map(|d| day_number(*d))
                .map(|n| n.to_string())
                .collect();
            vec![format!("{} {} *", days.join(","), cron_months(months))]
        }
        Rule::NthWeekdays {
            weekdays, months, ..
        } => {
            vec![format!(
                "* {} {}",
                cron_months(months),
                cron_weekdays(weekdays)
            )]
        }
        Rule::Biweekly { day, .. } => vec![format!("* * {}", cron_weekdays(&[*day]))],
        Rule::Cron(expression) => vec![expression.clone()],
    }
}

fn cron_weekdays(days: &[Weekday]) -> String {
    days.iter()
        .map(|d| d.num_days_from_sunday().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn cron_months(months: &[u32]) -> String {
    let listed: Vec<String> = months.iter().map(u32::to_string).collect();
    if listed.is_empty() {
        return "*".into();
    }
    listed.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn schedule(rule: Rule) -> Schedule {
        Schedule {
            rule,
            time: NaiveTime::from_hms_opt(2, 30, 0).expect("time"),
            timezone: None,
        }
    }

    #[test]
    fn systemd_lines() {
        let anchor = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
        let cases: Vec<(Rule, Vec<&str>, bool)> = vec![
            (Rule::Weekdays, vec!["Mon..Fri *-*-* 02:30:00"], false),
            (
                Rule::Biweekly {
                    day: Weekday::Thu,
                    anchor,
                },
                vec!["Thu *-*-* 02:30:00"],
                true,
            ),
            (
                Rule::Monthly(MonthDay::Last),
                vec!["*-*~01 02:30:00"],
                false,
            ),
            (
                Rule::DaysOfMonth {
                    days: vec![MonthDay::Day(1), MonthDay::Day(15), MonthDay::Last],
                    months: vec![1, 7],
                },
                vec!["*-01,07-01,15 02:30:00", "*-01,07~01 02:30:00"],
                false,
            ),
            (
                Rule::NthWeekdays {
                    weekdays: vec![Weekday::Fri],
                    weeks: vec![WeekOfMonth::Nth(2), WeekOfMonth::Last],
                    months: vec![],
                },
                vec!["Fri *-*-08..14 02:30:00", "Fri *-*~07/1 02:30:00"],
                false,
            ),
            (
                Rule::Cron("0 3 1,15 * sun".into()),
                vec!["Sun *-*-* 03:00:00", "*-*-01,15 03:00:00"],
                false,
            ),
            (
                Rule::Cron("*/30 1 * jan mon-fri".into()),
                vec!["Mon..Fri *-01-* 01:00,30:00"],
                false,
            ),
        ];
        for (rule, lines, guarded) in cases {
            let (got, got_guarded) = systemd(&schedule(rule.clone())).expect("valid");
            let got: Vec<String> = got
                .into_iter()
                .map(|l| l.replace("Mon,Tue,Wed,Thu,Fri", "Mon..Fri"))
                .collect();
            assert_eq!(
                (got, got_guarded),
                (lines.iter().map(|l| (*l).to_owned()).collect(), guarded),
                "{rule:?}"
            );
        }
    }

    #[test]
    fn cron_lines() {
        let cases: Vec<(Rule, &str, bool)> = vec![
            (Rule::Weekends, "30 2 * * 6,0", false),
            (Rule::Monthly(MonthDay::Last), "30 2 28,29,30,31 * *", true),
            (
                Rule::NthWeekdays {
                    weekdays: vec![Weekday::Fri],
                    weeks: vec![WeekOfMonth::Nth(2)],
                    months: vec![3],
                },
                "30 2 * 3 5",
                true,
            ),
            (Rule::Cron("@weekly".into()), "@weekly", false),
        ];
        for (rule, line, guarded) in cases {
            assert_eq!(
                cron(&schedule(rule.clone())),
                (vec![line.to_owned()], guarded),
                "{rule:?}"
            );
        }
    }
}
