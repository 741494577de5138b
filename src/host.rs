//! Facts about the host that the pure core takes as parameters: its time zone.

use chrono_tz::Tz;

/// The host's time zone: `TZ` when set to an IANA name, else the system's zone, else UTC.
pub fn zone() -> Tz {
    let from_env = std::env::var("TZ")
        .ok()
        .and_then(|tz| tz.trim_start_matches(':').parse().ok());
    from_env
        .or_else(|| {
            iana_time_zone::get_timezone()
                .ok()
                .and_then(|name| name.parse().ok())
        })
        .unwrap_or(Tz::UTC)
}

/// The zone of a schedule: its own (already a known zone: the runner config is checked when
/// read), else the host's. The one fallback `ovrun` uses, through `RunnerConfig::zone`.
pub fn schedule_zone(schedule_zone: Option<Tz>) -> Tz {
    schedule_zone.unwrap_or_else(zone)
}
