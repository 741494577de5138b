//! The engine's jobs by correlation id, as the job routes (`crate::sim::jobs`) register and
//! poll them.

use std::sync::Mutex;

use serde_json::{Value, json};

use super::API;

/// The engine's jobs.
#[derive(Debug, Default)]
pub struct Jobs {
    pub(crate) list: Mutex<Vec<Job>>,
}

/// One job.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) correlation_id: String,
    pub(crate) description: String,
    pub(crate) status: &'static str,
    /// What it ends as.
    pub(crate) outcome: &'static str,
    pub(crate) start_time: i64,
    pub(crate) end_time: Option<i64>,
}

impl Job {
    fn json(&self) -> Value {
        let mut body = json!({
            "id": self.id, "href": format!("{API}/jobs/{}", self.id),
            "auto_cleared": "true", "description": self.description, "external": "false",
            "last_updated": self.end_time.unwrap_or(self.start_time),
            "start_time": self.start_time, "status": self.status,
        });
        if let Some(end) = self.end_time {
            body["end_time"] = json!(end);
        }
        body
    }

    /// Answers its state, then moves on: `started` lasts one poll.
    pub(crate) fn poll(&mut self) -> Value {
        let body = self.json();
        if self.status == "started" {
            self.status = self.outcome;
            self.end_time = Some(chrono::Utc::now().timestamp_millis());
        }
        body
    }
}
