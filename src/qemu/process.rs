//! Child processes owned by a handle: dropping the handle stops the process (SIGTERM, then
//! SIGKILL after a grace period) and reaps it, so no test, run or simulator leaves daemons
//! behind.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use super::QemuError;

/// How long a process gets to exit after SIGTERM (imageio needs about 1.5 s).
const GRACE: Duration = Duration::from_secs(5);

/// A running child process, stopped on drop.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    child: Option<Child>,
}

impl Supervised {
    /// Starts `command` with its standard streams sent to `log` (appended).
    ///
    /// # Errors
    /// The program cannot be started.
    pub fn spawn(
        name: &str,
        command: &mut Command,
        log: &std::path::Path,
    ) -> Result<Self, QemuError> {
        let open = || {
            fs_err::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map(fs_err::File::into_parts)
        };
        let (out, _) = open().map_err(QemuError::io(format!("opening {}", log.display())))?;
        let (err, _) = open().map_err(QemuError::io(format!("opening {}", log.display())))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(QemuError::io(format!("starting {name}")))?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
        })
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Its process id.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops it: SIGTERM, then SIGKILL after `GRACE`; waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
            let _ = kill_process(pid, Signal::TERM);
        }
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(process = %self.name, "did not stop within {GRACE:?} of SIGTERM; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `ready` says yes, up to `timeout`, checking that `process` still runs.
///
/// # Errors
/// The process exited, or `ready` never said yes.
pub fn wait_until<T>(
    process: &mut Supervised,
    timeout: Duration,
    mut ready: impl FnMut() -> Option<T>,
    log: &std::path::Path,
) -> Result<T, QemuError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = ready() {
            return Ok(found);
        }
        let exited = !process.is_running();
        if exited || Instant::now() >= deadline {
            let tail = fs_err::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            let why = if exited {
                "it exited"
            } else {
                "it was not ready in time"
            };
            return Err(QemuError::Start {
                program: process.name.clone(),
                why: format!(
                    "{why}; last log lines: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
