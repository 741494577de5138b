//! A VM's configuration as a point records it (issue 16): what a restore needs for a DR VM that
//! boots like the original (CPU topology, memory, firmware and chipset, OS, NICs and their
//! networks, each disk's attachment), names instead of the production engine's ids, and the
//! engine's own OVF beside it for the record.

use serde::{Deserialize, Serialize};

/// The VM's configuration when the point was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// Sockets, cores per socket, threads per core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuTopology>,
    /// Memory, guaranteed memory, maximum memory, bytes.
    #[serde(default)]
    pub memory: MemoryConfig,
    /// Firmware and chipset (`q35_ovmf`, `i440fx_sea_bios`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_type: Option<String>,
    /// The machine type, when the VM sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_type: Option<String>,
    /// Operating system type (`rhel_9x64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    /// Boot devices in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boot_devices: Vec<String>,
    /// `server`, `desktop`, `high_performance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_type: Option<String>,
    /// The guest's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// High availability and its priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_availability: Option<HighAvailability>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Custom properties, name and value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<(String, String)>,
    /// The NICs in order.
    #[serde(default)]
    pub nics: Vec<NicConfig>,
    /// The disks' attachments in the VM's order.
    #[serde(default)]
    pub disks: Vec<AttachmentConfig>,
    /// The engine's OVF of the VM (`all_content=true`), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ovf: Option<String>,
}

/// Sockets, cores per socket, threads per core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuTopology {
    /// Sockets.
    pub sockets: u64,
    /// Cores per socket.
    pub cores: u64,
    /// Threads per core.
    pub threads: u64,
}

/// Memory, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Defined memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Guaranteed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guaranteed: Option<u64>,
    /// Maximum (hot plug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

/// High availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HighAvailability {
    /// On.
    pub enabled: bool,
    /// Priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

/// A NIC, its network by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicConfig {
    /// Name (`nic1`).
    pub name: String,
    /// `virtio`, `e1000`, ...
    pub interface: String,
    /// Its MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Its vNIC profile's name (none: on no network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnic_profile: Option<String>,
    /// That profile's network's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Link up.
    pub linked: bool,
    /// Plugged.
    pub plugged: bool,
}

/// A disk's attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentConfig {
    /// The disk's id (the point's disk entry with this id).
    pub disk: String,
    /// `virtio_scsi`, `virtio`, `sata`, `ide`.
    pub interface: String,
    /// The boot disk.
    pub bootable: bool,
    /// Plugged.
    pub active: bool,
    /// The guest's name for it (`/dev/sda`), when the guest agent said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_name: Option<String>,
}
