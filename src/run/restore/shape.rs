//! The DR VM's shape from the point's recorded configuration (issue 16): production's
//! configuration with the policy's `cpu`/`memory` overrides for a smaller DR cluster, its disks
//! attached in the recorded order with their own interfaces and flags (the policy's
//! `disk_interface` where the point recorded none, or where the policy overrides it), and its
//! NICs on the DR profiles the network map gives, with production's MACs or new ones.

use super::Job;
use super::log::RestoredDisk;
use super::network::Placement;
use crate::plan::model::MacPolicy;
use crate::run::catalog::{CpuTopology, DiskEntry, VmConfig};
use crate::run::engine::NicRequest;

/// How one restored disk is attached.
pub(super) struct Attach<'a> {
    pub(super) disk: &'a RestoredDisk,
    pub(super) interface: String,
    pub(super) bootable: bool,
    pub(super) active: bool,
}

impl Job<'_> {
    /// The point's configuration with the policy's overrides; `None` for a point taken before
    /// configurations were recorded.
    pub(super) fn shaped_config(&self) -> Option<VmConfig> {
        let mut config = self.point.config.clone()?;
        if let Some(cpu) = &self.restore.cpu {
            let now = config.cpu.unwrap_or(CpuTopology {
                sockets: 1,
                cores: 1,
                threads: 1,
            });
            config.cpu = Some(CpuTopology {
                sockets: cpu.sockets.map_or(now.sockets, u64::from),
                cores: cpu.cores.map_or(now.cores, u64::from),
                threads: cpu.threads.map_or(now.threads, u64::from),
            });
        }
        if let Some(mib) = self.restore.memory_mib {
            let bytes = mib * 1024 * 1024;
            config.memory.size = Some(bytes);
            config.memory.guaranteed = config.memory.guaranteed.map(|g| g.min(bytes));
            config.memory.max = config.memory.max.map(|m| m.max(bytes));
        }
        Some(config)
    }

    /// Each restored disk's attachment, in the order production had them.
    pub(super) fn attachments<'d>(&self, restored: &'d [RestoredDisk]) -> Vec<Attach<'d>> {
        let recorded = self.point.config.as_ref().map(|c| c.disks.as_slice());
        let mut plan: Vec<Attach<'d>> = restored
            .iter()
            .map(|disk| self.attach(disk, recorded.unwrap_or_default()))
            .collect();
        if let Some(recorded) = recorded {
            let at = |id: &str| {
                recorded
                    .iter()
                    .position(|a| a.disk == id)
                    .unwrap_or(usize::MAX)
            };
            plan.sort_by_key(|a| at(&a.disk.source_id));
        }
        if !plan.iter().any(|a| a.bootable)
            && let Some(first) = plan.first_mut()
        {
            first.bootable = true;
        }
        plan
    }

    /// One disk's attachment: as recorded, else as the manifest's disk entry says.
    fn attach<'d>(
        &self,
        disk: &'d RestoredDisk,
        recorded: &[crate::run::catalog::AttachmentConfig],
    ) -> Attach<'d> {
        let entry: Option<&DiskEntry> = self.point.disks.iter().find(|d| d.id == disk.source_id);
        let own = recorded.iter().find(|a| a.disk == disk.source_id);
        let interface = match own {
            Some(a) if !self.restore.disk_interface_overrides => a.interface.clone(),
            _ => self.restore.disk_interface.as_str().to_owned(),
        };
        Attach {
            disk,
            interface,
            bootable: own.map_or_else(|| entry.is_some_and(|e| e.bootable), |a| a.bootable),
            active: own.is_none_or(|a| a.active),
        }
    }

    /// The NICs to add, each on its DR profile; production's MAC only with `mac_policy: keep`.
    pub(super) fn nic_requests<'c>(
        &self,
        config: &'c VmConfig,
        placements: &'c [Placement],
    ) -> Vec<NicRequest<'c>> {
        let keep = self.restore.mac_policy == MacPolicy::Keep;
        config
            .nics
            .iter()
            .zip(placements)
            .map(|(nic, placed)| NicRequest {
                name: &nic.name,
                interface: &nic.interface,
                vnic_profile: placed.as_ref().map(|(id, _)| id.as_str()),
                mac: nic.mac.as_deref().filter(|_| keep),
                linked: nic.linked,
                plugged: nic.plugged,
            })
            .collect()
    }
}

/// The words of a restore of a point without a configuration.
pub(super) fn unshaped_warning(point: &str) -> String {
    format!(
        "point {point} was taken before ovrun recorded VM configurations: the DR VM gets \
         production's memory only (Blank template otherwise; check its CPU, firmware and NICs)"
    )
}
