//! An image transfer's two ends as both directions see them: waiting until the engine has it
//! `transferring` (its data-plane URL), and finishing it (finalize, then the final phase). A
//! backup's downloads and a restore's uploads run between the two.

use super::engine::wait::{Seen, wait_until};
use super::engine::{EngineClient, EngineError, TransferPhase, shown};
use super::job::{Options, RunError};
use super::retry;

/// Waits until image transfer `id` is transferring (at most [`retry::PHASE_WAIT`]); its
/// data-plane URL.
pub(crate) async fn wait_transferring(
    client: &EngineClient,
    options: &Options,
    id: &str,
) -> Result<String, RunError> {
    let what = format!(
        "image transfer {id} to reach phase {}",
        TransferPhase::Transferring
    );
    let patience = retry::stoppable(options, retry::PHASE_WAIT);
    let poll = async || open_transfer_url(client, id).await;
    Ok(wait_until(&what, patience, poll).await?)
}

/// The data-plane URL of image transfer `id` once it is transferring; else its phase while it
/// is still starting.
async fn open_transfer_url(client: &EngineClient, id: &str) -> Result<Seen<String>, RunError> {
    let now = client.transfer(id).await?;
    match now.phase {
        Some(TransferPhase::Transferring) => now
            .transfer_url
            .or(now.proxy_url)
            .map(Seen::Done)
            .ok_or_else(|| RunError::Failed(format!("transfer {id} has no URL"))),
        Some(phase @ (TransferPhase::Initializing | TransferPhase::Resuming)) => {
            Ok(Seen::Waiting(format!("phase {phase}")))
        }
        Some(other) => Err(RunError::Failed(format!("transfer {id} is {other}"))),
        None => Err(RunError::Failed(format!(
            "transfer {id} is in an unknown phase"
        ))),
    }
}

/// Finalizes image transfer `id` (retried by the engine operation) and waits for
/// `finished_success` (an upload's disk is then checked by the engine; a download changes
/// nothing). A finalize whose answer was lost but which the engine did carry out is seen in
/// the phase and is fine.
pub(crate) async fn finish_transfer(
    client: &EngineClient,
    options: &Options,
    id: &str,
) -> Result<(), RunError> {
    let asked = client.finalize_transfer(id).await;
    if let Err(e) = &asked {
        tracing::warn!("finalizing transfer {id}: {e}");
    }
    let what = format!(
        "image transfer {id} to reach phase {}",
        TransferPhase::FinishedSuccess
    );
    let patience = retry::unstoppable(options, retry::PHASE_WAIT);
    let poll = async || transfer_end(client, id, &asked).await;
    Ok(wait_until(&what, patience, poll).await?)
}

/// Whether image transfer `id` ended well, failed, or still runs (after its finalize was
/// `asked`).
async fn transfer_end(
    client: &EngineClient,
    id: &str,
    asked: &Result<(), EngineError>,
) -> Result<Seen<()>, RunError> {
    let phase = match client.transfer(id).await {
        Ok(t) => t.phase,
        Err(e) if e.is_not_found() => return Ok(Seen::Done(())),
        Err(e) if e.is_transient() => return Ok(Seen::Waiting(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    match phase {
        Some(TransferPhase::FinishedSuccess) => Ok(Seen::Done(())),
        Some(p) if p.is_unsuccessful_end() => Err(RunError::Failed(ended_why(id, &p, asked))),
        Some(p @ TransferPhase::Transferring) if asked.is_err() => {
            Err(RunError::Failed(ended_why(id, &p, asked)))
        }
        p => Ok(Seen::Waiting(format!("phase {}", shown(p.as_ref())))),
    }
}

/// Why a transfer ended in `phase` instead of succeeding.
fn ended_why(id: &str, phase: &TransferPhase, asked: &Result<(), EngineError>) -> String {
    match asked {
        Err(e) => format!("transfer {id} is {phase}: finalizing it failed: {e}"),
        Ok(()) => format!(
            "transfer {id} ended {phase} (the engine cancels a transfer whose client is idle \
             longer than its inactivity_timeout, or whose disk failed its check)"
        ),
    }
}
