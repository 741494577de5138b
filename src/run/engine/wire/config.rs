//! A VM's configuration as the engine sends it (`GET /vms/{id}?all_content=true`, its NICs, and
//! the vNIC profiles and networks they name), read leniently like every wire type: what a
//! point records so that a restore can make the DR VM boot like the original.

use super::lenient;
use super::resources::Ref;
use serde::Deserialize;

/// A VM with its whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VmDetails {
    /// Memory in bytes.
    #[serde(default, deserialize_with = "lenient::number")]
    pub memory: Option<u64>,
    /// Guaranteed and maximum memory.
    #[serde(default)]
    pub memory_policy: Option<MemoryPolicy>,
    /// CPU topology.
    #[serde(default)]
    pub cpu: Option<Cpu>,
    /// Firmware and chipset (`q35_ovmf`, `i440fx_sea_bios`, ...).
    #[serde(default)]
    pub bios: Option<Bios>,
    /// The machine type, when not the cluster's (`pc-q35-rhel8.6.0`).
    #[serde(default, deserialize_with = "lenient::text")]
    pub custom_emulated_machine: Option<String>,
    /// Operating system and boot order.
    #[serde(default)]
    pub os: Option<Os>,
    /// `server`, `desktop`, `high_performance`.
    #[serde(default, rename = "type", deserialize_with = "lenient::text")]
    pub vm_type: Option<String>,
    /// The guest's time zone.
    #[serde(default)]
    pub time_zone: Option<Ref>,
    /// High availability.
    #[serde(default)]
    pub high_availability: Option<HighAvailability>,
    /// Free text.
    #[serde(default, deserialize_with = "lenient::text")]
    pub description: Option<String>,
    /// Free text.
    #[serde(default, deserialize_with = "lenient::text")]
    pub comment: Option<String>,
    /// Custom properties.
    #[serde(default)]
    pub custom_properties: Option<CustomProperties>,
    /// The OVF (`all_content=true`).
    #[serde(default)]
    pub initialization: Option<Initialization>,
}

/// Guaranteed and maximum memory, bytes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MemoryPolicy {
    /// Guaranteed.
    #[serde(default, deserialize_with = "lenient::number")]
    pub guaranteed: Option<u64>,
    /// Maximum (hot plug).
    #[serde(default, deserialize_with = "lenient::number")]
    pub max: Option<u64>,
}

/// CPU.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Cpu {
    /// Topology.
    #[serde(default)]
    pub topology: Option<Topology>,
}

/// Sockets, cores per socket, threads per core.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Topology {
    /// Sockets.
    #[serde(default, deserialize_with = "lenient::number")]
    pub sockets: Option<u64>,
    /// Cores per socket.
    #[serde(default, deserialize_with = "lenient::number")]
    pub cores: Option<u64>,
    /// Threads per core.
    #[serde(default, deserialize_with = "lenient::number")]
    pub threads: Option<u64>,
}

/// Firmware and chipset.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Bios {
    /// `q35_ovmf`, `q35_secure_boot`, `q35_sea_bios`, `i440fx_sea_bios`, `cluster_default`.
    #[serde(default, rename = "type", deserialize_with = "lenient::text")]
    pub bios_type: Option<String>,
}

/// Operating system.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Os {
    /// `rhel_9x64`, `windows_2019x64`, `other`, ...
    #[serde(default, rename = "type", deserialize_with = "lenient::text")]
    pub os_type: Option<String>,
    /// Boot order.
    #[serde(default)]
    pub boot: Option<Boot>,
}

/// Boot order.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Boot {
    /// The devices.
    #[serde(default)]
    pub devices: Option<BootDevices>,
}

/// Boot devices in order (`hd`, `network`, `cdrom`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BootDevices {
    /// In order.
    #[serde(default, deserialize_with = "lenient::list")]
    pub device: Vec<String>,
}

/// High availability.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HighAvailability {
    /// On.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub enabled: Option<bool>,
    /// Priority.
    #[serde(default, deserialize_with = "lenient::signed")]
    pub priority: Option<i64>,
}

/// Custom properties.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CustomProperties {
    /// Each.
    #[serde(default, deserialize_with = "lenient::list")]
    pub custom_property: Vec<CustomProperty>,
}

/// One custom property.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CustomProperty {
    /// Name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    /// Value.
    #[serde(default, deserialize_with = "lenient::text")]
    pub value: Option<String>,
}

/// `initialization` of `all_content=true`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Initialization {
    /// The configuration.
    #[serde(default)]
    pub configuration: Option<Configuration>,
}

/// A VM configuration document.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Configuration {
    /// `ovf`.
    #[serde(default, rename = "type", deserialize_with = "lenient::text")]
    pub config_type: Option<String>,
    /// The document.
    #[serde(default, deserialize_with = "lenient::text")]
    pub data: Option<String>,
}

/// A VM's NIC.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Nic {
    /// Id.
    #[serde(default)]
    pub id: String,
    /// Name (`nic1`).
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    /// `virtio`, `e1000`, `rtl8139`, ...
    #[serde(default, deserialize_with = "lenient::text")]
    pub interface: Option<String>,
    /// Its MAC.
    #[serde(default)]
    pub mac: Option<Mac>,
    /// Its vNIC profile (none: unplugged from any network).
    #[serde(default)]
    pub vnic_profile: Option<Ref>,
    /// Link up.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub linked: Option<bool>,
    /// Plugged.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub plugged: Option<bool>,
}

/// A MAC address.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Mac {
    /// `56:6f:…`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub address: Option<String>,
}

/// `GET /vms/{id}/nics`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Nics {
    /// The NICs.
    #[serde(default, deserialize_with = "lenient::list")]
    pub nic: Vec<Nic>,
}

/// A vNIC profile.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VnicProfile {
    /// Id.
    #[serde(default)]
    pub id: String,
    /// Name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    /// Its network.
    #[serde(default)]
    pub network: Option<Ref>,
}

/// `GET /vnicprofiles`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VnicProfiles {
    /// The profiles.
    #[serde(default, deserialize_with = "lenient::list")]
    pub vnic_profile: Vec<VnicProfile>,
}

/// A logical network.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Network {
    /// Id.
    #[serde(default)]
    pub id: String,
    /// Name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
}
