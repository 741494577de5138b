//! Facts about the host that the pure core takes as parameters: its time zone.

use chrono_tz::Tz;

use crate::plan::runner::RunnerConfig;

/// The host's time zone: `TZ` when set to an IANA name, else the system's zone, else UTC.
pub fn zone() -> Tz {
    let from_env = std::env::var("TZ").ok();
    let named = from_env.and_then(|tz| tz.trim_start_matches(':').parse().ok());
    let from_host = || iana_time_zone::get_timezone().ok()?.parse().ok();
    named.or_else(from_host).unwrap_or(Tz::UTC)
}

// Defined here, not beside the type in src/plan: the fallback reads the host, and the plan
// core reads nothing from it.
impl RunnerConfig {
    /// The zone the VM's schedule and retention days are counted in: the config's own
    /// (checked when the file was read), else the host's. The one way `ovrun` gets a zone.
    pub fn zone(&self) -> Tz {
        self.timezone.unwrap_or_else(zone)
    }
}
