//! Reading the VM's configuration for a point (issue 16): the engine's VM with all its content,
//! its NICs with their vNIC profiles and networks by name (DR has other ids), and its disks'
//! attachments in order.

use std::collections::HashMap;

use super::download::Source;
use crate::run::catalog::{
    AttachmentConfig, CpuTopology, HighAvailability, MemoryConfig, NicConfig, VmConfig,
};
use crate::run::engine::{EngineClient, EngineError, Nic, VmDetails};

/// The VM's configuration now; `sources` are its backed-up disks as attached.
///
/// # Errors
/// A call fails.
pub(super) async fn read_vm_config(
    client: &EngineClient,
    vm_id: &str,
    sources: &[Source],
) -> Result<VmConfig, EngineError> {
    let details = client.vm_details(vm_id).await?;
    let mut config = from_details(&details);
    let mut names = ProfileNames::default();
    for nic in client.nics(vm_id).await? {
        config.nics.push(names.nic_config(client, &nic).await?);
    }
    config.disks = sources.iter().map(attachment_config).collect();
    Ok(config)
}

/// Everything but the NICs and disks.
fn from_details(vm: &VmDetails) -> VmConfig {
    let topology = vm.cpu.as_ref().and_then(|c| c.topology.as_ref());
    let policy = vm.memory_policy.as_ref();
    let ha = vm.high_availability.as_ref();
    let os = vm.os.as_ref();
    VmConfig {
        cpu: topology.map(|t| CpuTopology {
            sockets: t.sockets.unwrap_or(1),
            cores: t.cores.unwrap_or(1),
            threads: t.threads.unwrap_or(1),
        }),
        memory: MemoryConfig {
            size: vm.memory,
            guaranteed: policy.and_then(|p| p.guaranteed),
            max: policy.and_then(|p| p.max),
        },
        bios_type: vm.bios.as_ref().and_then(|b| b.bios_type.clone()),
        machine_type: vm.custom_emulated_machine.clone(),
        os_type: os.and_then(|o| o.os_type.clone()),
        boot_devices: os
            .and_then(|o| o.boot.as_ref()?.devices.as_ref())
            .map(|d| d.device.clone())
            .unwrap_or_default(),
        vm_type: vm.vm_type.clone(),
        time_zone: vm.time_zone.as_ref().and_then(|z| z.name.clone()),
        high_availability: ha.map(|h| HighAvailability {
            enabled: h.enabled.unwrap_or(false),
            priority: h.priority,
        }),
        description: vm.description.clone().filter(|d| !d.is_empty()),
        comment: vm.comment.clone().filter(|c| !c.is_empty()),
        custom_properties: custom_properties(vm),
        ovf: ovf(vm),
        ..VmConfig::default()
    }
}

fn custom_properties(vm: &VmDetails) -> Vec<(String, String)> {
    let all = vm.custom_properties.as_ref();
    let each = all
        .map(|c| c.custom_property.as_slice())
        .unwrap_or_default();
    each.iter()
        .filter_map(|p| Some((p.name.clone()?, p.value.clone().unwrap_or_default())))
        .collect()
}

fn ovf(vm: &VmDetails) -> Option<String> {
    let configuration = vm.initialization.as_ref()?.configuration.as_ref()?;
    configuration.data.clone().filter(|d| !d.is_empty())
}

fn attachment_config(source: &Source) -> AttachmentConfig {
    AttachmentConfig {
        disk: source.disk.id.clone(),
        interface: source.interface.clone(),
        bootable: source.bootable,
        active: true,
        logical_name: source.logical_name.clone(),
    }
}

/// The names of vNIC profiles and their networks, each asked once.
#[derive(Default)]
struct ProfileNames {
    known: HashMap<String, (Option<String>, Option<String>)>,
}

impl ProfileNames {
    /// A NIC with its profile's and network's names.
    async fn nic_config(
        &mut self,
        client: &EngineClient,
        nic: &Nic,
    ) -> Result<NicConfig, EngineError> {
        let profile = nic.vnic_profile.as_ref().and_then(|p| p.id.clone());
        let (vnic_profile, network) = match profile {
            Some(id) => self.names(client, &id).await?,
            None => (None, None),
        };
        Ok(NicConfig {
            name: nic.name.clone().unwrap_or_else(|| nic.id.clone()),
            interface: nic.interface.clone().unwrap_or_else(|| "virtio".into()),
            mac: nic.mac.as_ref().and_then(|m| m.address.clone()),
            vnic_profile,
            network,
            linked: nic.linked.unwrap_or(true),
            plugged: nic.plugged.unwrap_or(true),
        })
    }

    /// Profile `id`'s name and its network's name.
    async fn names(
        &mut self,
        client: &EngineClient,
        id: &str,
    ) -> Result<(Option<String>, Option<String>), EngineError> {
        if let Some(known) = self.known.get(id) {
            return Ok(known.clone());
        }
        let profile = client.vnic_profile(id).await?;
        let network = match profile.network.as_ref().and_then(|n| n.id.as_deref()) {
            Some(network) => client.network(network).await?.name,
            None => None,
        };
        let names = (profile.name, network);
        self.known.insert(id.to_owned(), names.clone());
        Ok(names)
    }
}
