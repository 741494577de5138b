//! Cron expressions as a policy may write them: five standard fields (names, ranges, steps,
//! lists) or `@daily`, `@weekly`, `@monthly`, `@yearly`, with cron's rule that a day matches
//! when either restricted day field matches.
//!
//! `croner` parses and evaluates (it follows Vixie cron, OR rule included); its extensions (`L`,
//! `W`, `#`, `?`, `+`, seconds, years) are refused because a cron daemon would not understand
//! them in the compiled cron file. When an expression does not parse, `cron-parser` names the
//! field and the bytes at fault, which `ovplan validate` underlines.

use std::ops::Range;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveTime};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed cron expression.
#[derive(Debug, Clone)]
pub struct CronSpec {
    cron: Cron,
    /// The five fields, after expanding a `@` macro.
    pub fields: [String; 5],
}

/// Why an expression was refused, and which bytes of it are at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronProblem {
    /// What is wrong.
    pub message: String,
    /// The bytes of the expression at fault.
    pub span: Range<usize>,
}

const MACROS: [(&str, &str); 5] = [
    ("@daily", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

impl CronSpec {
    /// Parses an expression.
    ///
    /// # Errors
    /// A [`CronProblem`] naming the field and bytes at fault.
    pub fn parse(expression: &str) -> Result<Self, CronProblem> {
        let whole = 0..expression.len();
        let expanded = expand_macro(expression).map_err(|message| CronProblem {
            message,
            span: whole.clone(),
        })?;
        let fields = split_fields(&expanded).ok_or_else(|| CronProblem {
            message: format!(
                "it has {} fields, not 5",
                expanded.split_whitespace().count()
            ),
            span: whole.clone(),
        })?;
        if !expression.trim_start().starts_with('@') {
            refuse_extensions(expression)?;
        }
        let cron = standard_parser()
            .parse(&fields.join(" "))
            .map_err(|e| locate(expression, &e.to_string()))?;
        Ok(Self { cron, fields })
    }

    /// Whether the expression fires at some time on `date` (months and the day rule).
    pub fn fires_on(&self, date: NaiveDate) -> bool {
        let pattern = &self.cron.pattern;
        let weekday = croner::Weekday::from_days_from_sunday(date.weekday().num_days_from_sunday());
        pattern.month_match(date.month()).unwrap_or(false)
            && pattern
                .day_match(date.year(), date.month(), date.day(), weekday)
                .unwrap_or(false)
    }

    /// The times of day it fires at, ascending.
    pub fn times(&self) -> Vec<NaiveTime> {
        let pattern = &self.cron.pattern;
        let mut times = Vec::new();
        for hour in pattern.hours.values() {
            for minute in pattern.minutes.values() {
                times.extend(NaiveTime::from_hms_opt(
                    u32::from(hour),
                    u32::from(minute),
                    0,
                ));
            }
        }
        times
    }

    /// The sets of each field, for translating into other calendar languages: minutes, hours,
    /// days of month, months, days of week (0 = Sunday, no 7).
    pub fn sets(&self) -> [Vec<u16>; 5] {
        let p = &self.cron.pattern;
        let mut dow: Vec<u16> = p.days_of_week.values().into_iter().map(|d| d % 7).collect();
        dow.sort_unstable();
        dow.dedup();
        [
            p.minutes.values(),
            p.hours.values(),
            p.days.values(),
            p.months.values(),
            dow,
        ]
    }

    /// Whether the day-of-month field is `*` (cron's OR rule applies only when neither is).
    pub fn any_day_of_month(&self) -> bool {
        self.cron.pattern.is_dom_wildcard()
    }

    /// Whether the day-of-week field is `*`.
    pub fn any_day_of_week(&self) -> bool {
        self.cron.pattern.is_dow_wildcard()
    }
}

fn standard_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

fn expand_macro(expression: &str) -> Result<String, String> {
    let trimmed = expression.trim();
    if !trimmed.starts_with('@') {
        return Ok(trimmed.to_owned());
    }
    MACROS
        .iter()
        .find(|(name, _)| trimmed.eq_ignore_ascii_case(name))
        .map(|(_, fields)| (*fields).to_owned())
        .ok_or_else(|| format!("`{trimmed}` is not one of @daily, @weekly, @monthly, @yearly"))
}

fn split_fields(expression: &str) -> Option<[String; 5]> {
    let fields: Vec<String> = expression.split_whitespace().map(str::to_owned).collect();
    fields.try_into().ok()
}

/// `L`, `W`, `#`, `?` and `+` are extensions of some cron libraries that cron daemons refuse.
fn refuse_extensions(expression: &str) -> Result<(), CronProblem> {
    let found = expression
        .char_indices()
        .find(|(_, c)| matches!(c.to_ascii_uppercase(), 'L' | 'W' | '#' | '?' | '+'));
    let Some((at, c)) = found else {
        return Ok(());
    };
    // Letters inside names (JUL, WED) are names, not the L and W modifiers.
    let word = word_around(expression, at);
    if word.len() > 1 && c.is_ascii_alphabetic() && word.chars().all(|ch| ch.is_ascii_alphabetic())
    {
        return Ok(());
    }
    Err(CronProblem {
        message: format!(
            "`{c}` is an extension of some cron libraries, not standard cron, which the cron daemon would refuse"
        ),
        span: at..at + c.len_utf8(),
    })
}

fn word_around(text: &str, at: usize) -> &str {
    let is_word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '#' | '?' | '+');
    let start = text[..at].rfind(|c: char| !is_word(c)).map_or(0, |i| i + 1);
    let end = text[at..]
        .find(|c: char| !is_word(c))
        .map_or(text.len(), |i| at + i);
    &text[start..end]
}

/// The field at fault, found by `cron-parser` (which names fields and bytes), else by trying
/// each field alone with `croner`.
fn locate(expression: &str, croner_message: &str) -> CronProblem {
    if let Err(error) = cron_parser::Schedule::parse(expression) {
        let span = error.span();
        if !span.is_empty() {
            return CronProblem {
                message: error.to_string(),
                span,
            };
        }
    }
    let mut offset = 0;
    for (index, field) in expression.split_whitespace().enumerate().take(5) {
        let start = offset + expression[offset..].find(field).unwrap_or(0);
        offset = start + field.len();
        let mut probe = ["*"; 5];
        probe[index] = field;
        if standard_parser().parse(&probe.join(" ")).is_err() {
            return CronProblem {
                message: format!("the {} field `{field}` is not valid", FIELD_NAMES[index]),
                span: start..offset,
            };
        }
    }
    CronProblem {
        message: croner_message.to_owned(),
        span: 0..expression.len(),
    }
}

impl FromStr for CronSpec {
    type Err = CronProblem;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn standard_forms_parse() {
        for ok in [
            "15 1 * * mon-fri",
            "0 3 1,15 * sun",
            "*/10 2-4 * jan,jul 7",
            "@daily",
            "@Weekly",
            "0 0 L * *x",
        ] {
            let parsed = CronSpec::parse(ok);
            assert_eq!(parsed.is_ok(), !ok.contains('L'), "{ok}: {parsed:?}");
        }
    }

    #[test]
    fn problems_point_at_the_field() {
        let cases = [
            ("0 2 * * mon-fry", 12..15),
            ("0 25 * * *", 2..4),
            ("0 0 L * *", 4..5),
            ("0 0 1#2 * *", 5..6),
            ("0 0 * *", 0..7),
            ("@hourly", 0..7),
        ];
        for (expression, span) in cases {
            let problem = CronSpec::parse(expression).expect_err(expression);
            assert_eq!(problem.span, span, "{expression}: {}", problem.message);
        }
    }

    #[test]
    fn either_day_field_matches_when_both_are_restricted() {
        let spec = CronSpec::parse("0 3 1,15 * sun").expect("valid");
        assert!(spec.fires_on(date(2026, 3, 1)));
        assert!(spec.fires_on(date(2026, 3, 8)));
        assert!(!spec.fires_on(date(2026, 3, 9)));
        let weekdays_only = CronSpec::parse("0 3 * * 1-5").expect("valid");
        assert!(!weekdays_only.fires_on(date(2026, 3, 1)));
        assert!(weekdays_only.fires_on(date(2026, 3, 2)));
    }

    #[test]
    fn sunday_is_0_and_7() {
        let spec = CronSpec::parse("0 0 * * 7").expect("valid");
        assert_eq!(spec.sets()[4], vec![0]);
    }
}
