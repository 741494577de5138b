//! One function per engine operation `ovrun` uses, as methods of [`EngineClient`]: typed
//! values in and out, the request bodies written here and nowhere else. The engine's faults
//! that decide something come back typed: [`EngineError::NeedsFull`] (take a full backup),
//! [`EngineError::Locked`] (another backup runs), [`EngineError::NotFound`] (no such name).
//!
//! The calls that end something on the engine (a backup's or a transfer's finalize, a
//! transfer's cancel) are retried on a 5xx or a transport error with a bounded backoff (about
//! 25 s in all): one lost answer must not throw away a backup that was read completely, nor
//! leave a disk locked. A retry that the engine refuses because the first call did get through
//! (409, "already finalizing") is left to the caller's poll, which then sees the phase move on.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::Method;
use serde_json::{Value, json};

use super::wire::{
    ApiRoot, BACKUP_API_SINCE, Backup, BackupMode, Backups, Checkpoint, Checkpoints, Collection,
    ContentType, Direction, Disk, DiskAttachment, DiskAttachments, Disks, Event, Events,
    FaultMeaning, ImageTransfer, Named, Vm, Vms,
};
use super::{EngineClient, EngineError, url_encode};

/// A backup to start: its description, its disks, and the checkpoint an incremental starts
/// from (`None`: a full backup).
#[derive(Debug, Clone)]
pub struct BackupRequest<'a> {
    /// The description (ovrun's start with `ovrun `).
    pub description: String,
    /// The disks' ids.
    pub disks: Vec<&'a str>,
    /// The checkpoint of an incremental.
    pub from_checkpoint: Option<&'a str>,
}

/// An image transfer to create.
#[derive(Debug, Clone, Copy)]
pub enum TransferRequest<'a> {
    /// Reading a disk of a running backup.
    Download {
        /// The disk.
        disk: &'a str,
        /// The backup.
        backup: &'a str,
    },
    /// Writing a new disk.
    Upload {
        /// The disk.
        disk: &'a str,
    },
}

/// A new sparse qcow2 disk (a restore's).
#[derive(Debug, Clone)]
pub struct DiskRequest<'a> {
    /// Its name and alias.
    pub name: &'a str,
    /// Its description.
    pub description: String,
    /// Its virtual size in bytes.
    pub provisioned_size: u64,
    /// The space allocated up front in bytes.
    pub initial_size: u64,
    /// The storage domain's name.
    pub storage_domain: &'a str,
}

/// A new VM from the Blank template (a restore's).
#[derive(Debug, Clone)]
pub struct VmRequest<'a> {
    /// Its name.
    pub name: &'a str,
    /// The cluster's name.
    pub cluster: &'a str,
    /// Its description.
    pub description: String,
    /// Its memory in bytes (also its guaranteed and maximum memory), when no configuration
    /// is given.
    pub memory: Option<u64>,
    /// The configuration to give it (a point's, with the policy's overrides).
    pub config: Option<&'a crate::run::catalog::VmConfig>,
}

/// The path of an image transfer.
pub fn transfer_href(id: &str) -> String {
    format!("/imagetransfers/{id}")
}

/// The id in an image transfer's path (the path itself if it is not one).
pub fn transfer_id(href: &str) -> &str {
    href.strip_prefix("/imagetransfers/").unwrap_or(href)
}

/// The engine's fault, typed when it decides something for a backup.
fn typed_fault(error: EngineError) -> EngineError {
    let EngineError::Fault { detail, .. } = &error else {
        return error;
    };
    let detail = detail.clone();
    match FaultMeaning::of(&detail) {
        FaultMeaning::NeedsFull => EngineError::NeedsFull {
            reason: detail,
            fault: Some(Box::new(error)),
        },
        FaultMeaning::BackupRunning => EngineError::Locked {
            what: detail,
            fault: Box::new(error),
        },
        FaultMeaning::Other => error,
    }
}

/// The backoff of retried actions: 0.5 s doubling up to 8 s, six retries (about 25 s in all).
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(8))
        .with_max_times(6)
        .with_jitter()
}

/// The VMs: lookups, changes, power.
impl EngineClient {
    /// The VMs named exactly `name` (case-sensitive; the engine's search also matches
    /// patterns and other cases).
    ///
    /// # Errors
    /// The call fails.
    pub async fn vms_named(&self, name: &str) -> Result<Vec<Vm>, EngineError> {
        let search = format!("name=\"{}\"", name.replace('"', "\\\""));
        let query: String = url_encode(&search);
        let vms: Vms = self
            .get(&format!("/vms?search={query}&case_sensitive=true"))
            .await?;
        Ok(vms.vm.into_iter().filter(|vm| vm.name == name).collect())
    }

    /// The one VM named `name` (exact, case-sensitive).
    ///
    /// # Errors
    /// None ([`EngineError::NotFound`]) or several match, or the call fails.
    pub async fn vm_by_name(&self, name: &str) -> Result<Vm, EngineError> {
        let mut exact = self.vms_named(name).await?;
        match exact.len() {
            1 => Ok(exact.remove(0)),
            0 => Err(EngineError::NotFound {
                what: format!("a VM named {name:?} on {}", self.api_url()),
            }),
            n => Err(EngineError::Decode {
                path: "/vms".into(),
                why: format!("{n} VMs are named {name:?}"),
            }),
        }
    }

    /// VM `id`.
    ///
    /// # Errors
    /// The call fails (404: it does not exist).
    pub async fn vm(&self, id: &str) -> Result<Vm, EngineError> {
        self.get(&format!("/vms/{id}")).await
    }

    /// A new VM from the Blank template.
    ///
    /// # Errors
    /// The engine refused.
    pub async fn add_vm(&self, request: &VmRequest<'_>) -> Result<Vm, EngineError> {
        let mut body = json!({
            "name": request.name,
            "cluster": {"name": request.cluster},
            "template": {"name": "Blank"},
            "description": request.description,
        });
        if let Some(memory) = request.memory {
            // The engine's default maximum is not documented: give it explicitly (API page 11.3).
            body["memory"] = json!(memory.to_string());
            body["memory_policy"] =
                json!({"guaranteed": memory.to_string(), "max": memory.to_string()});
        }
        if let Some(config) = request.config {
            super::config_ops::add_config_fields(&mut body, config);
        }
        self.post("/vms", &body).await
    }

    /// Renames VM `id`.
    ///
    /// # Errors
    /// The engine refused.
    pub async fn update_vm_name(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let body = json!({"name": name});
        self.call(Method::PUT, &format!("/vms/{id}"), Some(&body))
            .await
            .map(|_| ())
    }

    /// Starts VM `id`.
    ///
    /// # Errors
    /// The engine refused.
    pub async fn start_vm(&self, id: &str) -> Result<(), EngineError> {
        self.action(&format!("/vms/{id}/start")).await
    }

    /// Stops VM `id`.
    ///
    /// # Errors
    /// The engine refused.
    pub async fn stop_vm(&self, id: &str) -> Result<(), EngineError> {
        self.action(&format!("/vms/{id}/stop")).await
    }

    /// Removes VM `id` with its disks.
    ///
    /// # Errors
    /// The engine refused.
    pub async fn remove_vm(&self, id: &str) -> Result<(), EngineError> {
        self.delete(&format!("/vms/{id}")).await
    }

    /// The objects of `collection` named `name`.
    ///
    /// # Errors
    /// The call fails.
    pub async fn named(
        &self,
        collection: &Collection,
        name: &str,
    ) -> Result<Vec<Named>, EngineError> {
        let query = url_encode(&format!("name={name}"));
        let list: Value = self.get(&format!("/{collection}?search={query}")).await?;
        let items = match list.get(collection.item_key()).cloned() {
            Some(Value::Array(items)) => items,
            None | Some(Value::Null) => Vec::new(),
            Some(one) => vec![one],
        };
        Ok(items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect())
    }
}

/// The disks.
impl EngineClient {
    /// VM `vm_id`'s disk attachments, each with its whole disk.
    ///
    /// # Errors
    /// The call fails.
    pub async fn disk_attachments(&self, vm_id: &str) -> Result<Vec<DiskAttachment>, EngineError> {
        let path = format!("/vms/{vm_id}/diskattachments?follow=disk");
        Ok(self.get::<DiskAttachments>(&path).await?.disk_attachment)
    }

    /// Disk `id`.
    ///
    /// # Errors
    /// The call fails (404: it does not exist).
    pub async fn disk(&self, id: &str) -> Result<Disk, EngineError> {
        self.get(&format!("/disks/{id}")).await
    }

    /// A new sparse qcow2 data disk, enabled for incremental backup.
    ///
    /// # Errors
    /// The engine refused.
    pub async fn add_disk(&self, request: &DiskRequest<'_>) -> Result<Disk, EngineError> {
        let body = json!({
            "name": request.name, "alias": request.name,
            "description": request.description,
            "format": "cow", "sparse": "true", "backup": BackupMode::Incremental.as_str(),
            "provisioned_size": request.provisioned_size.to_string(),
            "initial_size": request.initial_size.to_string(),
            "content_type": ContentType::Data.as_str(),
            "storage_domains": {"storage_domain": [{"name": request.storage_domain}]},
        });
        self.post("/disks", &body).await
    }

    /// Attaches disk `disk_id` to VM `vm_id` on `interface`, `[bootable, active]`.
    ///
    /// # Errors
    /// The engine refused.
    pub async fn attach_disk(
        &self,
        vm_id: &str,
        disk_id: &str,
        interface: &str,
        [bootable, active]: [bool; 2],
    ) -> Result<(), EngineError> {
        let body = json!({"disk": {"id": disk_id}, "interface": interface,
                          "bootable": bootable.to_string(), "active": active.to_string(),
                          "pass_discard": "false"});
        let path = format!("/vms/{vm_id}/diskattachments");
        self.post::<Value>(&path, &body).await.map(|_| ())
    }

    /// Removes disk `id`.
    ///
    /// # Errors
    /// The engine refused (404: it is gone already).
    pub async fn remove_disk(&self, id: &str) -> Result<(), EngineError> {
        self.delete(&format!("/disks/{id}")).await
    }
}

/// The backups and their checkpoints.
impl EngineClient {
    /// The engine's event that says backup `backup` failed, if it wrote one: among the newest
    /// events naming the backup (as the SDK's `backup_vm.py` finds why a backup failed), the
    /// newest of a failure's codes.
    ///
    /// # Errors
    /// The call fails.
    pub async fn backup_failure_event(&self, backup: &str) -> Result<Option<Event>, EngineError> {
        let search = url_encode(backup);
        let events: Events = self.get(&format!("/events?search={search}&max=10")).await?;
        Ok(events.event.into_iter().find(Event::tells_a_failed_backup))
    }

    /// The API root: which engine this is.
    ///
    /// # Errors
    /// The call fails.
    pub async fn api_root(&self) -> Result<ApiRoot, EngineError> {
        self.get("").await
    }

    /// Checks that the engine has the incremental backup API before any backup call, so that
    /// an older engine (oVirt and OLVM 4.3) is named as such instead of answering 404s.
    ///
    /// # Errors
    /// [`EngineError::Unsupported`] on an older engine, or the call fails.
    pub async fn require_backup_api(&self) -> Result<ApiRoot, EngineError> {
        let root = self.api_root().await?;
        if root.has_backup_api() {
            return Ok(root);
        }
        let (major, minor) = BACKUP_API_SINCE;
        let since = format!("{major}.{minor}");
        Err(EngineError::Unsupported {
            url: self.api_url().to_owned(),
            product: root.product(),
            feature: "incremental backup API (/vms/{id}/backups)".into(),
            help: format!(
                "ovrun takes backups through the engine's backup API; upgrade the engine to \
                 oVirt or OLVM {since} or newer"
            ),
            since,
        })
    }

    /// VM `vm_id`'s checkpoints.
    ///
    /// # Errors
    /// The call fails.
    pub async fn checkpoints(&self, vm_id: &str) -> Result<Vec<Checkpoint>, EngineError> {
        let path = format!("/vms/{vm_id}/checkpoints");
        Ok(self.get::<Checkpoints>(&path).await?.checkpoint)
    }

    /// VM `vm_id`'s backups.
    ///
    /// # Errors
    /// The call fails.
    pub async fn backups(&self, vm_id: &str) -> Result<Vec<Backup>, EngineError> {
        let path = format!("/vms/{vm_id}/backups");
        Ok(self.get::<Backups>(&path).await?.backup)
    }

    /// Starts a backup of VM `vm_id` (not waiting for the guest's consistency).
    ///
    /// # Errors
    /// [`EngineError::NeedsFull`] for an incremental the engine cannot take,
    /// [`EngineError::Locked`] while another backup of the VM runs, or the engine refused.
    pub async fn start_backup(
        &self,
        vm_id: &str,
        request: &BackupRequest<'_>,
    ) -> Result<Backup, EngineError> {
        let disks: Vec<Value> = request.disks.iter().map(|id| json!({"id": id})).collect();
        let mut body = json!({"description": request.description, "disks": {"disk": disks}});
        if let Some(from) = request.from_checkpoint {
            body["from_checkpoint_id"] = json!(from);
        }
        let path = format!("/vms/{vm_id}/backups?require_consistency=false");
        self.post(&path, &body).await.map_err(typed_fault)
    }

    /// Backup `id` of VM `vm_id`.
    ///
    /// # Errors
    /// The call fails (404: the engine dropped it).
    pub async fn backup(&self, vm_id: &str, id: &str) -> Result<Backup, EngineError> {
        let path = format!("/vms/{vm_id}/backups/{id}");
        self.get(&path).await.map_err(typed_fault)
    }

    /// The disks of backup `id`, each with its backup mode.
    ///
    /// # Errors
    /// The call fails.
    pub async fn backup_disks(&self, vm_id: &str, id: &str) -> Result<Vec<Disk>, EngineError> {
        let path = format!("/vms/{vm_id}/backups/{id}/disks");
        Ok(self.get::<Disks>(&path).await.map_err(typed_fault)?.disk)
    }

    /// Finalizes backup `id` (retried on a 5xx or no answer).
    ///
    /// # Errors
    /// The engine refused (not a 5xx), or the last retry failed too.
    pub async fn finalize_backup(&self, vm_id: &str, id: &str) -> Result<(), EngineError> {
        let path = format!("/vms/{vm_id}/backups/{id}/finalize");
        self.retried_action(&path).await.map_err(typed_fault)
    }

    /// An action that is retried while it fails with a 5xx or without an answer.
    async fn retried_action(&self, path: &str) -> Result<(), EngineError> {
        (|| self.action(path))
            .retry(backoff())
            .when(EngineError::is_transient)
            .notify(|e, after| tracing::warn!("{e}; trying again in {:.1} s", after.as_secs_f64()))
            .await
    }
}

/// The image transfers.
impl EngineClient {
    /// A new image transfer (raw; cancelled by the engine after 120 s without a client).
    ///
    /// # Errors
    /// The engine refused ([`EngineError::NeedsFull`] if it cannot read an incremental).
    pub async fn create_transfer(
        &self,
        request: TransferRequest<'_>,
    ) -> Result<ImageTransfer, EngineError> {
        let mut body = json!({"format": "raw", "inactivity_timeout": "120",
                              "timeout_policy": "cancel"});
        match request {
            TransferRequest::Download { disk, backup } => {
                body["disk"] = json!({"id": disk});
                body["backup"] = json!({"id": backup});
                body["direction"] = json!(Direction::Download);
            }
            TransferRequest::Upload { disk } => {
                body["disk"] = json!({"id": disk});
                body["direction"] = json!(Direction::Upload);
            }
        }
        self.post("/imagetransfers", &body)
            .await
            .map_err(typed_fault)
    }

    /// Image transfer `id`.
    ///
    /// # Errors
    /// The call fails (404: the engine dropped it).
    pub async fn transfer(&self, id: &str) -> Result<ImageTransfer, EngineError> {
        self.get(&transfer_href(id)).await
    }

    /// Finalizes image transfer `id` (retried on a 5xx or no answer).
    ///
    /// # Errors
    /// The engine refused (not a 5xx), or the last retry failed too.
    pub async fn finalize_transfer(&self, id: &str) -> Result<(), EngineError> {
        let path = format!("{}/finalize", transfer_href(id));
        self.retried_action(&path).await.map_err(typed_fault)
    }

    /// Cancels image transfer `id` (retried on a 5xx or no answer).
    ///
    /// # Errors
    /// The engine refused (not a 5xx), or the last retry failed too.
    pub async fn cancel_transfer(&self, id: &str) -> Result<(), EngineError> {
        self.retried_action(&format!("{}/cancel", transfer_href(id)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn fault(status: u16, detail: &str) -> EngineError {
        EngineError::Fault {
            method: Method::POST,
            path: "/vms/v/backups".into(),
            status: StatusCode::from_u16(status).expect("status"),
            reason: "Operation Failed".into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn checkpoint_faults_need_a_full_backup_and_keep_the_engines_words() {
        let detail = "[Cannot backup VM. Checkpoint ID c1 doesn't exist.]";
        let typed = typed_fault(fault(400, detail));
        let EngineError::NeedsFull { reason, .. } = &typed else {
            panic!("not NeedsFull: {typed:?}");
        };
        assert_eq!(reason, detail);
        assert_eq!(typed.to_string(), fault(400, detail).to_string());
        assert_eq!(typed.status(), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn a_running_backup_is_locked_and_other_faults_stay_faults() {
        let running = typed_fault(fault(409, "[The VM is during a backup operation.]"));
        assert!(matches!(running, EngineError::Locked { .. }), "{running:?}");
        let other = typed_fault(fault(500, "[Internal Engine Error]"));
        assert!(matches!(other, EngineError::Fault { .. }), "{other:?}");
        assert!(other.is_transient());
        assert!(!fault(409, "x").is_transient());
        assert!(!fault(404, "x").is_transient());
        assert!(!EngineError::Timeout("x".into()).is_transient());
    }
}
