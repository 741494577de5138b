//! The real `ovirt-imageio` daemon, run standalone as an engine host runs it: TLS with the
//! simulator's certificate on an ephemeral data port, a plain-HTTP control port on localhost,
//! and tickets that point at `qemu-nbd` exports.
//!
//! The configuration avoids the packaged-install defaults that fail standalone (see
//! ../shared/docs/dataplane-notes.md, "Traps"): no privilege drop, no systemd notify, no
//! abstract local socket (two daemons would collide), a log file of our own.
//!
//! A daemon that dies is started again before the next ticket is added, on the same ports, as
//! systemd's `Restart=` does on a host: the transfers it served are lost (their tickets went
//! with it), the next ones work.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::SimError;
use super::pki::PkiFiles;
use crate::qemu::process::{Supervised, wait_until};

/// A running daemon; stopped when dropped.
#[derive(Debug)]
pub struct Imageio {
    process: Arc<Mutex<Supervised>>,
    launch: Launch,
    /// The TLS data port (`/images/<ticket>`).
    pub data_port: u16,
    /// The plain-HTTP control port on 127.0.0.1 (`/tickets/<id>`).
    pub control_port: u16,
    control: reqwest::Client,
}

/// A transfer ticket, as the engine sends it to the daemon (`PUT /tickets/<uuid>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    /// The ticket id, also the last part of the transfer URL.
    pub uuid: String,
    /// The image's virtual size in bytes.
    pub size: u64,
    /// The export behind it (`nbd:unix:<socket>`).
    pub url: String,
    /// `["read"]` for downloads; `["write"]` (which allows reading) for uploads.
    pub ops: Vec<&'static str>,
    /// Seconds until it expires, extended by each request.
    pub timeout: u64,
    /// Seconds without a request before the daemon drops the transfer's connections.
    pub inactivity_timeout: u64,
    /// The export carries a dirty bitmap (`extents?context=dirty`).
    pub dirty: bool,
    /// Let zero ranges stay unallocated on write.
    pub sparse: bool,
    /// The engine's image transfer id.
    pub transfer_id: String,
}

/// How the daemon is started (again).
#[derive(Debug, Clone)]
struct Launch {
    executable: PathBuf,
    dir: PathBuf,
    pki: PkiFiles,
}

impl Launch {
    /// Starts the daemon on `ports` (data, control; 0 picks free ones); it and its ports.
    fn start(&self, ports: (u16, u16)) -> Result<(Supervised, u16, u16), SimError> {
        let conf_dir = self.dir.join("conf");
        let run_dir = self.dir.join("run");
        let log = self.dir.join("daemon.log");
        for d in [conf_dir.join("conf.d"), run_dir.clone()] {
            fs_err::create_dir_all(&d)
                .map_err(SimError::io(format!("creating {}", d.display())))?;
        }
        // The ports are read from the log: a dead daemon's lines go to the side.
        let _ = fs_err::rename(&log, self.dir.join("daemon.log.1"));
        let conf = config(&run_dir, &log, &self.pki, ports);
        crate::fsutil::write_atomic(&conf_dir.join("conf.d/50-ovsim.conf"), conf.as_bytes())
            .map_err(SimError::io("writing the ovirt-imageio configuration"))?;
        let mut command = Command::new(&self.executable);
        command.arg("-c").arg(&conf_dir);
        let stderr = self.dir.join("stderr.log");
        let mut process = Supervised::spawn("ovirt-imageio", &mut command, &stderr)?;
        let (data_port, control_port) = wait_until(
            &mut process,
            Duration::from_secs(30),
            || ports_in(&log),
            &stderr,
        )?;
        Ok((process, data_port, control_port))
    }
}

impl Imageio {
    /// Starts the daemon with its files under `dir` (configuration, run folder, log).
    ///
    /// # Errors
    /// The daemon cannot start, or does not report its ports in time.
    pub fn start(executable: &Path, dir: &Path, pki: &PkiFiles) -> Result<Self, SimError> {
        let launch = Launch {
            executable: executable.to_owned(),
            dir: dir.to_owned(),
            pki: pki.clone(),
        };
        let (process, data_port, control_port) = launch.start((0, 0))?;
        Ok(Self {
            process: Arc::new(Mutex::new(process)),
            launch,
            data_port,
            control_port,
            control: reqwest::Client::new(),
        })
    }

    /// The daemon's process id (a drill kills it to see it restarted).
    pub fn pid(&self) -> Option<u32> {
        self.process.lock().expect("imageio process lock").id()
    }

    /// Starts the daemon again, on the same ports, if it died.
    ///
    /// # Errors
    /// It cannot be started again.
    async fn revive(&self) -> Result<(), SimError> {
        let (process, launch) = (self.process.clone(), self.launch.clone());
        let ports = (self.data_port, self.control_port);
        tokio::task::spawn_blocking(move || {
            let mut process = process.lock().expect("imageio process lock");
            if process.is_running() {
                return Ok(());
            }
            tracing::warn!("ovirt-imageio is not running; starting it again (as systemd would)");
            let (again, _, _) = launch.start(ports)?;
            *process = again;
            Ok(())
        })
        .await
        .map_err(|e| SimError::Control(format!("restarting ovirt-imageio: {e}")))?
    }

    /// The transfer URL of a ticket, as the engine reports it in `transfer_url`.
    pub fn transfer_url(&self, ticket: &str) -> String {
        format!("https://localhost:{}/images/{ticket}", self.data_port)
    }

    fn ticket_url(&self, id: &str) -> String {
        format!("http://127.0.0.1:{}/tickets/{id}", self.control_port)
    }

    /// Installs a ticket, after starting the daemon again if it died.
    ///
    /// # Errors
    /// The daemon refuses it, or cannot be started again.
    pub async fn add_ticket(&self, ticket: &Ticket) -> Result<(), SimError> {
        self.revive().await?;
        let response = self
            .control
            .put(self.ticket_url(&ticket.uuid))
            .json(ticket)
            .send()
            .await
            .map_err(|e| SimError::Control(format!("adding ticket {}: {e}", ticket.uuid)))?;
        expect_success(response, "adding ticket", &ticket.uuid).await
    }

    /// Removes a ticket: its transfer URL answers 403 from then on.
    ///
    /// # Errors
    /// The daemon refuses (409 while connections stay busy).
    pub async fn remove_ticket(&self, id: &str) -> Result<(), SimError> {
        let response = self
            .control
            .delete(self.ticket_url(id))
            .send()
            .await
            .map_err(|e| SimError::Control(format!("removing ticket {id}: {e}")))?;
        expect_success(response, "removing ticket", id).await
    }

    /// The daemon's view of a ticket (`active`, `transferred`, `expires`, ...), `None` when it
    /// has none of that id.
    ///
    /// # Errors
    /// The control port does not answer.
    pub async fn ticket_info(&self, id: &str) -> Result<Option<serde_json::Value>, SimError> {
        let response = self
            .control
            .get(self.ticket_url(id))
            .send()
            .await
            .map_err(|e| SimError::Control(format!("reading ticket {id}: {e}")))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = response
            .error_for_status()
            .map_err(|e| SimError::Control(e.to_string()))?;
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| SimError::Control(e.to_string()))
    }

    /// Stops the daemon (also done on drop).
    pub fn stop(self) {
        self.process.lock().expect("imageio process lock").stop();
    }
}

async fn expect_success(
    response: reqwest::Response,
    doing: &str,
    id: &str,
) -> Result<(), SimError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(SimError::Control(format!(
        "{doing} {id}: {status}: {}",
        body.trim()
    )))
}

/// The daemon's configuration: TLS data port and control port (0: ephemeral, at first start);
/// the ports are read back from its log.
fn config(run_dir: &Path, log: &Path, pki: &PkiFiles, (data, control): (u16, u16)) -> String {
    format!(
        "[daemon]\nrun_dir = {run}\ndrop_privileges = false\nsystemd_enable = false\n\n\
         [tls]\nenable = true\nkey_file = {key}\ncert_file = {cert}\nca_file = {ca}\n\n\
         [remote]\nhost = 127.0.0.1\nport = {data}\n\n\
         [local]\nenable = false\n\n\
         [control]\ntransport = tcp\nport = {control}\n\n\
         [backend_http]\nca_file = {ca}\n\n\
         [handlers]\nkeys = logfile\n\n\
         [handler_logfile]\nargs = ('{log}',)\n",
        run = run_dir.display(),
        key = pki.server_key.display(),
        cert = pki.server_cert.display(),
        ca = pki.ca_cert.display(),
        log = log.display(),
    )
}

/// The data and control ports from the daemon's log lines
/// `remote.service listening on ('127.0.0.1', N)` and `control.service listening on (...)`.
fn ports_in(log: &Path) -> Option<(u16, u16)> {
    let text = fs_err::read_to_string(log).ok()?;
    Some((
        port_of(&text, "remote.service listening on")?,
        port_of(&text, "control.service listening on")?,
    ))
}

fn port_of(log: &str, marker: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.contains(marker))?;
    let digits: String = line
        .rsplit(',')
        .next()?
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Where the daemon's executable is: `$OVSIM_IMAGEIO`, else `.venv/bin/ovirt-imageio` beside
/// the project (what `scripts/setup.sh` installs), else `ovirt-imageio` on `PATH`.
pub fn executable(project_dir: &Path) -> PathBuf {
    if let Some(path) = std::env::var_os("OVSIM_IMAGEIO") {
        return PathBuf::from(path);
    }
    let venv = project_dir.join(".venv/bin/ovirt-imageio");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("ovirt-imageio")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_read_from_the_log() {
        let log = "x INFO (MainThread) [services] remote.service listening on ('127.0.0.1', 43289)\n\
                   x INFO (MainThread) [services] control.service listening on ('127.0.0.1', 43677)\n";
        assert_eq!(port_of(log, "remote.service listening on"), Some(43289));
        assert_eq!(port_of(log, "control.service listening on"), Some(43677));
        assert_eq!(port_of(log, "local.service listening on"), None);
    }
}
