//! [`wait_until`]: the one bounded poll. Every wait for an engine phase or status (a backup
//! becoming ready, a transfer finishing, a disk becoming ok, a VM going down, a locked VM) goes
//! through it: it polls, and between polls it sleeps (50 ms first, doubling up to an interval,
//! so a phase that takes one engine step is seen within a fraction of a second while a long
//! wait costs the engine at most one call per interval), it ends at a deadline with an error
//! that names what it waited for and the last thing it saw, and it ends early when a stop flag
//! is set (a run being stopped), unless the wait must finish (finalizing, undoing).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What one poll saw: the end of the wait, or what is still there (`"phase initializing"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen<T> {
    /// The wait is over.
    Done(T),
    /// Not yet; what was seen, for the log and the timeout's message.
    Waiting(String),
}

/// How long and how often a wait polls, and what stops it.
#[derive(Debug, Clone, Copy)]
pub struct Patience<'a> {
    /// At most this long.
    pub limit: Duration,
    /// The first pause.
    pub first: Duration,
    /// The longest pause.
    pub interval: Duration,
    /// Set: the wait ends with [`WaitError::Stopped`].
    pub stop: Option<&'a AtomicBool>,
}

impl<'a> Patience<'a> {
    /// At most `limit`, pauses from 50 ms doubling up to `interval`, not stoppable.
    pub fn new(limit: Duration, interval: Duration) -> Self {
        Self {
            limit,
            first: Duration::from_millis(50).min(interval),
            interval,
            stop: None,
        }
    }

    /// Every pause `interval` long (a wait for a lock, which takes minutes, not steps).
    #[must_use]
    pub fn steady(mut self) -> Self {
        self.first = self.interval;
        self
    }

    /// Ended when `stop` is set.
    #[must_use]
    pub fn stopped_by(mut self, stop: &'a AtomicBool) -> Self {
        self.stop = Some(stop);
        self
    }

    fn check_stop<E>(&self, what: &str) -> Result<(), WaitError<E>> {
        match self.stop {
            Some(stop) if stop.load(Ordering::Relaxed) => Err(WaitError::Stopped {
                what: what.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// Why a wait ended without its end.
#[derive(Debug)]
pub enum WaitError<E> {
    /// The limit passed.
    TimedOut {
        /// What was waited for (`"image transfer 1234 to reach phase finished_success"`).
        what: String,
        /// The limit.
        limit: Duration,
        /// The last thing seen.
        last: String,
    },
    /// The stop flag was set.
    Stopped {
        /// What was waited for.
        what: String,
    },
    /// A poll failed.
    Poll(E),
}

impl<E: fmt::Display> fmt::Display for WaitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut { what, limit, last } => write!(
                f,
                "gave up after {} s waiting for {what}; last seen: {last}",
                limit.as_secs()
            ),
            Self::Stopped { what } => write!(f, "stopped while waiting for {what}"),
            Self::Poll(e) => e.fmt(f),
        }
    }
}

/// Polls until `poll` sees the end, within `patience`.
///
/// # Errors
/// The limit passed ([`WaitError::TimedOut`] naming `what` and the last thing seen), the stop
/// flag was set, or a poll failed.
pub async fn wait_until<T, E>(
    what: &str,
    patience: Patience<'_>,
    mut poll: impl AsyncFnMut() -> Result<Seen<T>, E>,
) -> Result<T, WaitError<E>> {
    let deadline = Instant::now() + patience.limit;
    let mut pause = patience.first;
    loop {
        let last = match poll().await.map_err(WaitError::Poll)? {
            Seen::Done(value) => return Ok(value),
            Seen::Waiting(last) => last,
        };
        if Instant::now() >= deadline {
            return Err(WaitError::TimedOut {
                what: what.to_owned(),
                limit: patience.limit,
                last,
            });
        }
        patience.check_stop(what)?;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(patience.interval);
        patience.check_stop(what)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_past_its_limit_names_what_it_waited_for_and_the_last_thing_seen() {
        let patience = Patience::new(Duration::ZERO, Duration::from_millis(1));
        let what = "image transfer 1234 to reach phase finished_success";
        let waited = wait_until(what, patience, async || {
            Ok::<Seen<()>, String>(Seen::Waiting("phase finalizing_success".into()))
        })
        .await;
        assert_eq!(
            waited.unwrap_err().to_string(),
            "gave up after 0 s waiting for image transfer 1234 to reach phase \
             finished_success; last seen: phase finalizing_success"
        );
    }

    #[tokio::test]
    async fn a_wait_polls_until_done_and_a_stop_ends_it_unless_not_stoppable() {
        let mut polls = 0;
        let patience = Patience::new(Duration::from_secs(3600), Duration::from_millis(1));
        let done = wait_until("x", patience, async || {
            polls += 1;
            Ok::<_, String>(match polls {
                3 => Seen::Done(polls),
                _ => Seen::Waiting(format!("poll {polls}")),
            })
        })
        .await;
        assert_eq!(done.unwrap(), 3);
        let stop = AtomicBool::new(true);
        let stoppable = patience.stopped_by(&stop);
        let waiting = async || Ok::<Seen<()>, String>(Seen::Waiting("starting".into()));
        let stopped = wait_until("x", stoppable, waiting).await;
        assert!(matches!(stopped, Err(WaitError::Stopped { .. })));
        let failed = wait_until("x", patience, async || Err::<Seen<()>, _>("no answer")).await;
        assert_eq!(failed.unwrap_err().to_string(), "no answer");
    }
}
