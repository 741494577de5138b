//! Undoing a restore that failed or was killed: the transfer cancelled (the engine removes its
//! disk), the half-made VM and disks removed, the replaced VM renamed back and started again if
//! it ran. Each step's failure is logged and the rest still tried.

use super::Job;
use super::journal::{Made, OldVm};
use crate::run::engine::ops::transfer_id;
use crate::run::engine::wait::{Seen, WaitError, wait_until};
use crate::run::engine::{EngineClient, Vm, VmStatus, shown};
use crate::run::job::{Options, RunError};
use crate::run::retry;

impl Job<'_> {
    /// Removes the new VM: stopped first if it runs, then deleted (with its disks), then
    /// waited for until it is gone, so its name is free again.
    async fn remove_new_vm(&self, vm: &str) -> Result<(), RunError> {
        let now = self.client.vm(vm).await?;
        if now.status.is_some_and(|s| s != VmStatus::Down) {
            self.client.stop_vm(vm).await?;
            self.wait_vm_status(vm, VmStatus::Down, false).await?;
        }
        self.client.remove_vm(vm).await?;
        let what = format!("VM {vm} to be gone after its removal");
        let patience = retry::unstoppable(self.options, retry::CLEANUP_WAIT);
        let poll = async || vm_gone(self.client, vm).await;
        Ok(wait_until(&what, patience, poll).await?)
    }

    /// Puts DR back as it was, as far as it can; each step's failure is logged and the rest
    /// still tried.
    pub(super) async fn undo(&self, made: Made) {
        if let Some(href) = &made.transfer {
            let id = transfer_id(href);
            if let Err(e) = self.client.cancel_transfer(id).await {
                tracing::warn!("cancelling {href}: {e}");
            }
            wait_gone(self.client, id, self.options).await;
        }
        if let Some(vm) = &made.vm
            && let Err(e) = self.remove_new_vm(vm).await
        {
            tracing::warn!("removing the half-made VM {vm}: {e}; remove it by hand");
        }
        for disk in &made.disks {
            match self.client.remove_disk(disk).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!("removing the half-made disk {disk}: {e}"),
            }
        }
        if let Some(old) = &made.moved_old {
            self.put_back(old).await;
        }
    }

    /// The replaced VM under its name again, and running again if it was.
    async fn put_back(&self, old: &OldVm) {
        if old.renamed {
            let renamed = self.client.update_vm_name(&old.id, &old.name).await;
            match renamed {
                Ok(()) => tracing::info!(vm = %old.name, "the replaced VM has its name back"),
                Err(e) => tracing::error!(
                    "renaming {} back to {}: {e}; rename it by hand",
                    old.renamed_to,
                    old.name
                ),
            }
        }
        if old.was_up {
            let now: Option<Vm> = self.client.vm(&old.id).await.ok();
            let down = now.is_some_and(|vm| vm.status == Some(VmStatus::Down));
            let started = match down {
                true => match self.client.start_vm(&old.id).await {
                    Ok(()) => self.wait_vm_status(&old.id, VmStatus::Up, false).await,
                    Err(e) => Err(e.into()),
                },
                false => Ok(()),
            };
            if let Err(e) = started {
                tracing::error!("starting {} again: {e}; start it by hand", old.name);
            }
        }
    }
}

/// Waits (at most [`retry::CLEANUP_WAIT`]) until cancelled image transfer `id` has ended, so
/// its disk is gone; a transfer that does not end is reported.
async fn wait_gone(client: &EngineClient, id: &str, options: &Options) {
    let what = format!("the cancelled image transfer {id} to end");
    let patience = retry::unstoppable(options, retry::CLEANUP_WAIT);
    let poll = async || {
        let phase = client.transfer(id).await?.phase;
        Ok::<_, RunError>(match phase {
            Some(p) if p.is_finished() => Seen::Done(()),
            p => Seen::Waiting(format!("phase {}", shown(p.as_ref()))),
        })
    };
    match wait_until(&what, patience, poll).await {
        Err(WaitError::Poll(_)) | Ok(()) => {}
        Err(e) => tracing::warn!("{e}"),
    }
}

/// Whether VM `id` is gone (404).
async fn vm_gone(client: &EngineClient, id: &str) -> Result<Seen<()>, RunError> {
    match client.vm(id).await {
        Err(e) if e.is_not_found() => Ok(Seen::Done(())),
        Err(e) => Ok(Seen::Waiting(e.to_string())),
        Ok(now) => Ok(Seen::Waiting(format!(
            "status {}",
            shown(now.status.as_ref())
        ))),
    }
}
