//! An image transfer's two ends as both directions see them: waiting until the engine has it
//! `transferring` (its data-plane URL), and finishing it (finalize, then the final phase). A
//! backup's downloads and a restore's uploads run between the two.

use super::engine::{EngineClient, EngineError, ImageTransfer};
use super::job::{Options, RunError};
use super::retry::{self, Wait};

/// Waits until a transfer is `transferring` (at most [`retry::PHASE_WAIT`]); its data-plane
/// URL.
pub(crate) async fn wait_transferring(
    client: &EngineClient,
    options: &Options,
    href: &str,
) -> Result<String, RunError> {
    let mut wait = Wait::new(
        options,
        format!("transfer {href} to start"),
        retry::PHASE_WAIT,
    );
    loop {
        let now: ImageTransfer = client.get(href).await?;
        match now.phase.as_deref() {
            Some("transferring") => {
                return now
                    .transfer_url
                    .or(now.proxy_url)
                    .ok_or_else(|| RunError::Failed(format!("transfer {href} has no URL")));
            }
            Some(phase @ ("initializing" | "resuming")) => {
                wait.next(&format!("phase {phase}")).await?;
            }
            other => {
                return Err(RunError::Failed(format!(
                    "transfer {href} is {}",
                    other.unwrap_or("in an unknown phase")
                )));
            }
        }
    }
}

/// Finalizes a transfer (retried: [`retry::action`]) and waits for `finished_success` (an
/// upload's disk is then checked by the engine; a download changes nothing). A finalize whose
/// answer was lost but which the engine did carry out is seen in the phase and is fine.
pub(crate) async fn finish_transfer(
    client: &EngineClient,
    options: &Options,
    href: &str,
) -> Result<(), RunError> {
    let asked = retry::action(client, &format!("{href}/finalize")).await;
    if let Err(e) = &asked {
        tracing::warn!("finalizing {href}: {e}");
    }
    let mut wait = Wait::new(
        options,
        format!("transfer {href} to finish"),
        retry::PHASE_WAIT,
    )
    .unstoppable();
    loop {
        let last = match client.get::<ImageTransfer>(href).await {
            Ok(t) => {
                let phase = t.phase.unwrap_or_default();
                if let Some(end) = ended(href, &phase, &asked) {
                    return end;
                }
                format!("phase {phase}")
            }
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) if retry::is_transient(&e) => e.to_string(),
            Err(e) => return Err(e.into()),
        };
        wait.next(&last).await?;
    }
}

/// Whether a transfer whose finalize was `asked` has ended, seen in its `phase`: `Ok` on
/// success; a failure when it ended otherwise, or still transfers after its finalize failed;
/// `None` while it is finalizing.
fn ended(href: &str, phase: &str, asked: &Result<(), EngineError>) -> Option<Result<(), RunError>> {
    if phase == "finished_success" {
        return Some(Ok(()));
    }
    let failed = phase.starts_with("finished")
        || phase.starts_with("cancelled")
        || (asked.is_err() && phase == "transferring");
    failed.then(|| Err(RunError::Failed(why_ended(href, phase, asked))))
}

/// Why a transfer ended in `phase` rather than `finished_success`.
fn why_ended(href: &str, phase: &str, asked: &Result<(), EngineError>) -> String {
    match asked {
        Err(e) => format!("transfer {href} is {phase}: finalizing it failed: {e}"),
        Ok(()) => format!(
            "transfer {href} ended {phase} (the engine cancels a transfer whose client is idle \
             longer than its inactivity_timeout, or whose disk failed its check)"
        ),
    }
}
