//! `ovrun restore --dry-run`: the DR side checked as a restore would check it, and the steps a
//! restore would take, in words; nothing is made.

use super::Job;
use crate::run::catalog::DiskEntry;
use crate::run::config_view::cpu_words;
use crate::run::engine::Vm;
use crate::run::job::RunError;

impl Job<'_> {
    /// Checks the DR side and says what a restore would do.
    pub(super) async fn plan(&self) -> Result<Vec<String>, RunError> {
        let (existing, placements) = self.preflight().await?;
        let mut steps = vec![self.point_step()];
        steps.extend(self.shape_steps(&placements));
        steps.extend(self.disks().into_iter().map(|disk| self.upload_step(disk)));
        if let Some(old) = existing {
            steps.push(self.old_vm_step(&old));
        }
        if self.restore.auto_start_restored_vm {
            steps.push("start the restored VM".into());
        }
        Ok(steps)
    }

    /// What the point's configuration makes of the DR VM, and where its NICs go.
    fn shape_steps(&self, placements: &[super::network::Placement]) -> Vec<String> {
        let Some(config) = self.shaped_config() else {
            return vec![super::shape::unshaped_warning(&self.point.point)];
        };
        let cpu = config.cpu.map_or("the cluster's default".into(), cpu_words);
        let memory = config
            .memory
            .size
            .map_or("-".into(), |m| indicatif::HumanBytes(m).to_string());
        let mut steps = vec![format!(
            "create it with CPU {cpu}, memory {memory}, firmware {}, OS {}",
            config.bios_type.as_deref().unwrap_or("default"),
            config.os_type.as_deref().unwrap_or("default")
        )];
        for (nic, placed) in config.nics.iter().zip(placements) {
            let on = placed.as_ref().map_or("no network".into(), |(_, name)| {
                format!("vNIC profile {name}")
            });
            steps.push(format!("add NIC {} ({}) on {on}", nic.name, nic.interface));
        }
        steps
    }

    fn point_step(&self) -> String {
        format!(
            "restore point {} ({}, taken {}) of {} as VM {:?} in cluster {}",
            self.point.point,
            self.point.kind,
            self.point.taken_at,
            self.point.vm,
            self.name,
            self.restore.target_cluster_name
        )
    }

    fn upload_step(&self, disk: &DiskEntry) -> String {
        format!(
            "upload disk {} ({} virtual, from {}) into storage domain {}, attached as {}{}",
            disk.alias,
            indicatif::HumanBytes(disk.provisioned_size),
            disk.file,
            self.restore.target_storage_domain_name,
            self.restore.disk_interface,
            if disk.bootable { ", bootable" } else { "" }
        )
    }

    fn old_vm_step(&self, old: &Vm) -> String {
        if self.restore.backup_old_vm {
            format!(
                "rename the existing VM {:?} ({}) to {:?} and keep it",
                old.name,
                old.id,
                self.old_name()
            )
        } else {
            format!(
                "remove the existing VM {:?} ({}) and its disks",
                old.name, old.id
            )
        }
    }
}
