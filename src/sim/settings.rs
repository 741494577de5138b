//! A VM's configuration beyond its name, memory and disks (issue 16): CPU topology, firmware
//! and chipset, machine and OS type, boot order, VM type, time zone, high availability,
//! comment, custom properties and memory policy. Stored with the VM ([`VmSettings`]), defaulted
//! as a 4.5 engine defaults a VM made from the Blank template, shown in the VM's body
//! ([`settings_json`]), and changed by `POST /vms` and `PUT /vms/{id}` ([`SettingsRequest`]).
//! The OVF ([`super::ovf`]) writes the same values in the engine's OVF names.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::body::{Flag, Number, Text, one_or_many};
use super::inventory::SeedVm;
use super::reply::Refusal;
use super::state::EngineVersion;

const MIB: u64 = 1024 * 1024;

/// The firmware and chipset types of the API (`BiosType`), in the engine's order: a type's
/// place is its number in the OVF (`BiosType`, 0 for `i440fx_sea_bios`).
pub(crate) const BIOS_TYPES: [&str; 4] = [
    "i440fx_sea_bios",
    "q35_sea_bios",
    "q35_ovmf",
    "q35_secure_boot",
];

/// VM types (`VmType`), in the engine's order: a type's place is its number in the OVF.
pub(crate) const VM_TYPES: [&str; 3] = ["desktop", "server", "high_performance"];

const BOOT_DEVICES: [&str; 3] = ["cdrom", "hd", "network"];

/// A VM's configuration; what an older state lacks is the engine's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSettings {
    /// Sockets, cores per socket, threads per core.
    #[serde(default)]
    pub cpu: CpuTopology,
    /// Firmware and chipset; `None`: the cluster's ([`cluster_bios_type`]).
    #[serde(default)]
    pub bios_type: Option<String>,
    /// The machine type when not the cluster's (`custom_emulated_machine`).
    #[serde(default)]
    pub machine_type: Option<String>,
    /// The guest OS (`other`, `rhel_9x64`, ...).
    #[serde(default = "other")]
    pub os_type: String,
    /// Boot order (`hd`, `cdrom`, `network`).
    #[serde(default = "hd")]
    pub boot_devices: Vec<String>,
    /// `server`, `desktop` or `high_performance`.
    #[serde(default = "server")]
    pub vm_type: String,
    /// The guest's time zone; `None`: the engine's default for its OS ([`VmSettings::time_zone`]).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// High availability.
    #[serde(default)]
    pub high_availability: HighAvailability,
    /// Free text.
    #[serde(default)]
    pub comment: String,
    /// Custom properties, in order.
    #[serde(default)]
    pub custom_properties: Vec<CustomProperty>,
    /// Guaranteed memory, bytes; `None` (an older state): the memory.
    #[serde(default)]
    pub memory_guaranteed: Option<u64>,
    /// Maximum memory (hot plug), bytes; `None` (an older state): four times the memory.
    #[serde(default)]
    pub memory_max: Option<u64>,
}

/// CPU topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTopology {
    /// Sockets.
    pub sockets: u64,
    /// Cores per socket.
    pub cores: u64,
    /// Threads per core.
    pub threads: u64,
}

/// High availability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HighAvailability {
    /// Restarted by the engine when it dies.
    pub enabled: bool,
    /// Its place in the restart order.
    pub priority: u64,
}

/// A custom property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomProperty {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

fn other() -> String {
    "other".into()
}

fn hd() -> Vec<String> {
    vec!["hd".into()]
}

fn server() -> String {
    "server".into()
}

impl Default for CpuTopology {
    /// The Blank template's: one socket, one core, one thread.
    fn default() -> Self {
        Self {
            sockets: 1,
            cores: 1,
            threads: 1,
        }
    }
}

impl Default for VmSettings {
    /// What a 4.5 engine gives a VM made from the Blank template through the API: its CPU,
    /// OS `other`, boot from disk, type `server` (the Blank template's since 4.4), HA off at
    /// priority 0, the cluster's firmware and the OS's time zone.
    fn default() -> Self {
        Self {
            cpu: CpuTopology::default(),
            bios_type: None,
            machine_type: None,
            os_type: other(),
            boot_devices: hd(),
            vm_type: server(),
            time_zone: None,
            high_availability: HighAvailability::default(),
            comment: String::new(),
            custom_properties: Vec::new(),
            memory_guaranteed: None,
            memory_max: None,
        }
    }
}

/// The firmware a new VM gets from its cluster when none is asked: what the engine sets on a
/// new cluster of the newest level its version has (4.7 on 4.5: UEFI on Q35; 4.6 on 4.4: BIOS
/// on Q35; before 4.4 there is only i440fx).
pub(crate) fn cluster_bios_type(version: EngineVersion) -> &'static str {
    if version >= (EngineVersion { major: 4, minor: 5 }) {
        "q35_ovmf"
    } else if version.has_backup_api() {
        "q35_sea_bios"
    } else {
        "i440fx_sea_bios"
    }
}

impl VmSettings {
    /// The firmware: the VM's own, else its cluster's.
    pub(crate) fn bios_type(&self, version: EngineVersion) -> &str {
        (self.bios_type.as_deref()).unwrap_or_else(|| cluster_bios_type(version))
    }

    /// The time zone: the VM's own, else the engine's default for its OS
    /// (`DefaultWindowsTimeZone` or `DefaultGeneralTimeZone`).
    pub(crate) fn time_zone(&self) -> &str {
        match &self.time_zone {
            Some(zone) => zone,
            None if self.os_type.starts_with("windows") => "GMT Standard Time",
            None => "Etc/GMT",
        }
    }

    /// Guaranteed memory in bytes for a VM of `memory` bytes.
    pub(crate) fn guaranteed(&self, memory: u64) -> u64 {
        self.memory_guaranteed.unwrap_or(memory)
    }

    /// Maximum memory in bytes for a VM of `memory` bytes: four times it unless set, as the
    /// engine computes it (`VmCommonUtils.getMaxMemorySizeDefault`).
    pub(crate) fn max(&self, memory: u64) -> u64 {
        self.memory_max.unwrap_or(memory.saturating_mul(4))
    }

    /// Sockets × cores × threads.
    pub(crate) fn vcpus(&self) -> u64 {
        let cpu = self.cpu;
        cpu.sockets * cpu.cores * cpu.threads
    }
}

/// The VM's configuration fields in the engine's shape, to add to its body; the machine type
/// and custom properties only when set, as the engine leaves them out.
pub(crate) fn settings_json(settings: &VmSettings, memory: u64, version: EngineVersion) -> Value {
    let cpu = settings.cpu;
    let ha = settings.high_availability;
    let mut body = json!({
        "bios": {"boot_menu": {"enabled": "false"}, "type": settings.bios_type(version)},
        "comment": settings.comment,
        "cpu": {"architecture": "x86_64", "topology": {"cores": cpu.cores.to_string(),
            "sockets": cpu.sockets.to_string(), "threads": cpu.threads.to_string()}},
        "high_availability": {"enabled": ha.enabled.to_string(),
            "priority": ha.priority.to_string()},
        "memory_policy": {"ballooning": "true",
            "guaranteed": settings.guaranteed(memory).to_string(),
            "max": settings.max(memory).to_string()},
        "os": {"boot": {"devices": {"device": settings.boot_devices}}, "type": settings.os_type},
        "time_zone": {"name": settings.time_zone()},
        "type": settings.vm_type,
    });
    if let Some(machine) = &settings.machine_type {
        body["custom_emulated_machine"] = json!(machine);
    }
    if !settings.custom_properties.is_empty() {
        body["custom_properties"] = json!({"custom_property": settings.custom_properties});
    }
    body
}

/// The engine's answer to a value its enum `kind` has not (`EnumValidator`).
fn not_a_member(value: &str, kind: &str, members: &[&str]) -> Refusal {
    let detail = format!(
        "{value} is not a member of {kind}. Possible values for {kind} are: {}",
        members.join(", ")
    );
    Refusal::invalid_value(&detail)
}

/// `value`, when it is one of the `members` of the engine's enum `kind`.
pub(crate) fn member(value: &str, kind: &str, members: &[&str]) -> Result<String, Refusal> {
    if members.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(not_a_member(value, kind, members))
    }
}

/// A firmware type asked for: `cluster_default` (the cluster's) is `None`.
fn requested_bios(value: &str) -> Result<Option<String>, Refusal> {
    if value == "cluster_default" {
        return Ok(None);
    }
    let mut members = BIOS_TYPES.to_vec();
    members.insert(0, "cluster_default");
    member(value, "BiosType", &members).map(Some)
}

/// The configuration fields of a VM's request (`POST /vms`, `PUT /vms/{id}`), in the engine's
/// names; each is optional, what is left out stays as it is (the default on a new VM).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SettingsRequest {
    cpu: Option<CpuRequest>,
    bios: Option<BiosRequest>,
    custom_emulated_machine: Option<Text>,
    os: Option<OsRequest>,
    #[serde(rename = "type")]
    vm_type: Option<String>,
    time_zone: Option<NameRequest>,
    high_availability: Option<HaRequest>,
    comment: Option<Text>,
    custom_properties: Option<PropertiesRequest>,
    memory_policy: Option<PolicyRequest>,
}

#[derive(Debug, Default, Deserialize)]
struct CpuRequest {
    topology: Option<TopologyRequest>,
}

#[derive(Debug, Default, Deserialize)]
struct TopologyRequest {
    sockets: Option<Number>,
    cores: Option<Number>,
    threads: Option<Number>,
}

#[derive(Debug, Default, Deserialize)]
struct BiosRequest {
    #[serde(rename = "type")]
    bios_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct OsRequest {
    #[serde(rename = "type")]
    os_type: Option<String>,
    boot: Option<BootRequest>,
}

#[derive(Debug, Default, Deserialize)]
struct BootRequest {
    devices: Option<DevicesRequest>,
}

#[derive(Debug, Default, Deserialize)]
struct DevicesRequest {
    #[serde(default, deserialize_with = "one_or_many")]
    device: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct NameRequest {
    name: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
struct HaRequest {
    enabled: Option<Flag>,
    priority: Option<Number>,
}

#[derive(Debug, Default, Deserialize)]
struct PropertiesRequest {
    #[serde(default, deserialize_with = "one_or_many")]
    custom_property: Vec<PropertyRequest>,
}

#[derive(Debug, Default, Deserialize)]
struct PropertyRequest {
    name: Option<Text>,
    value: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
struct PolicyRequest {
    guaranteed: Option<Number>,
    max: Option<Number>,
}

impl SettingsRequest {
    /// `settings` changed as asked: each value checked first, so a refused request changes
    /// nothing.
    ///
    /// # Errors
    /// A value the engine's enums have not.
    pub(crate) fn apply(&self, settings: &VmSettings) -> Result<VmSettings, Refusal> {
        let mut changed = settings.clone();
        self.apply_cpu(&mut changed);
        self.apply_kinds(&mut changed)?;
        self.apply_texts(&mut changed);
        if let Some(ha) = &self.high_availability {
            let current = &mut changed.high_availability;
            current.enabled = ha.enabled.as_ref().map_or(current.enabled, Flag::value);
            let priority = ha.priority.as_ref().and_then(Number::value);
            current.priority = priority.unwrap_or(current.priority);
        }
        if let Some(policy) = &self.memory_policy {
            let given = |n: &Option<Number>| n.as_ref().and_then(Number::value);
            changed.memory_guaranteed = given(&policy.guaranteed).or(changed.memory_guaranteed);
            changed.memory_max = given(&policy.max).or(changed.memory_max);
        }
        Ok(changed)
    }

    fn apply_cpu(&self, settings: &mut VmSettings) {
        let Some(topology) = self.cpu.as_ref().and_then(|c| c.topology.as_ref()) else {
            return;
        };
        let given = |n: &Option<Number>, current: u64| {
            let value = n.as_ref().and_then(Number::value).filter(|v| *v > 0);
            value.unwrap_or(current)
        };
        let cpu = &mut settings.cpu;
        cpu.sockets = given(&topology.sockets, cpu.sockets);
        cpu.cores = given(&topology.cores, cpu.cores);
        cpu.threads = given(&topology.threads, cpu.threads);
    }

    /// The enum-valued fields: firmware, VM type, boot devices (and the OS type beside them).
    fn apply_kinds(&self, settings: &mut VmSettings) -> Result<(), Refusal> {
        if let Some(bios) = self.bios.as_ref().and_then(|b| b.bios_type.as_deref()) {
            settings.bios_type = requested_bios(bios)?;
        }
        if let Some(kind) = &self.vm_type {
            settings.vm_type = member(kind, "VmType", &VM_TYPES)?;
        }
        let Some(os) = &self.os else {
            return Ok(());
        };
        if let Some(devices) = os.boot.as_ref().and_then(|b| b.devices.as_ref()) {
            let each = devices.device.iter();
            let checked = each.map(|d| member(d, "BootDevice", &BOOT_DEVICES));
            settings.boot_devices = checked.collect::<Result<_, _>>()?;
        }
        if let Some(os_type) = &os.os_type {
            settings.os_type.clone_from(os_type);
        }
        Ok(())
    }

    /// The free-text fields: machine type, time zone, comment, custom properties.
    fn apply_texts(&self, settings: &mut VmSettings) {
        if let Some(machine) = &self.custom_emulated_machine {
            settings.machine_type = Some(machine.value()).filter(|m| !m.is_empty());
        }
        if let Some(zone) = self.time_zone.as_ref().and_then(|z| z.name.as_ref()) {
            // The engine stores an empty zone as none: the OS's default.
            settings.time_zone = Some(zone.value()).filter(|z| !z.is_empty());
        }
        if let Some(comment) = &self.comment {
            settings.comment = comment.value();
        }
        if let Some(properties) = &self.custom_properties {
            let each = properties.custom_property.iter();
            let named = each.filter_map(|p| {
                let value = p.value.as_ref().map(Text::value).unwrap_or_default();
                Some(CustomProperty {
                    name: p.name.as_ref()?.value(),
                    value,
                })
            });
            settings.custom_properties = named.collect();
        }
    }
}

/// The memory policy checks of the engine (`VmHandler`): the guaranteed memory at most the
/// memory, the memory at most the maximum. `action` is `add` or `edit`.
///
/// # Errors
/// The engine's refusal.
pub(crate) fn check_memory(
    settings: &VmSettings,
    memory: u64,
    action: &str,
) -> Result<(), Refusal> {
    let max = settings.max(memory);
    if memory > max {
        let why = format!(
            "Cannot {action} VM. Memory size ({}MB) cannot exceed maximum memory size ({}MB).",
            memory / MIB,
            max / MIB
        );
        return Err(Refusal::fault(StatusCode::CONFLICT, &why));
    }
    if settings.guaranteed(memory) > memory {
        let why =
            format!("Cannot {action} VM. Physical Memory Guaranteed cannot exceed Memory Size.");
        return Err(Refusal::fault(StatusCode::BAD_REQUEST, &why));
    }
    Ok(())
}

/// A seed VM's configuration, checked as a request's would be; `memory` in bytes.
///
/// # Errors
/// A value the engine's enums have not, or a memory policy it refuses.
pub(crate) fn from_seed(seed: &SeedVm, memory: u64) -> Result<VmSettings, String> {
    let why = |refused: Refusal| format!("seed VM {:?}: {}", seed.name, refused.detail());
    let mut settings = VmSettings::default();
    if let Some(cpu) = seed.cpu {
        settings.cpu = CpuTopology {
            sockets: cpu.sockets.max(1),
            cores: cpu.cores.max(1),
            threads: cpu.threads.max(1),
        };
    }
    if let Some(bios) = &seed.bios_type {
        settings.bios_type = requested_bios(bios).map_err(why)?;
    }
    if let Some(kind) = &seed.vm_type {
        settings.vm_type = member(kind, "VmType", &VM_TYPES).map_err(why)?;
    }
    for device in &seed.boot_devices {
        member(device, "BootDevice", &BOOT_DEVICES).map_err(why)?;
    }
    seed_texts(seed, &mut settings);
    settings.memory_guaranteed = Some(seed.memory_guaranteed_mib.map_or(memory, |m| m * MIB));
    settings.memory_max = Some(seed.memory_max_mib.map_or(memory * 4, |m| m * MIB));
    check_memory(&settings, memory, "add").map_err(why)?;
    Ok(settings)
}

/// A seed VM's free-text settings.
fn seed_texts(seed: &SeedVm, settings: &mut VmSettings) {
    if !seed.boot_devices.is_empty() {
        settings.boot_devices.clone_from(&seed.boot_devices);
    }
    settings.machine_type.clone_from(&seed.machine_type);
    if let Some(os) = &seed.os_type {
        settings.os_type.clone_from(os);
    }
    settings.time_zone.clone_from(&seed.time_zone);
    if let Some(ha) = seed.high_availability {
        settings.high_availability = HighAvailability {
            enabled: ha.enabled,
            priority: ha.priority,
        };
    }
    settings.comment = seed.comment.clone().unwrap_or_default();
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let each = seed.custom_properties.iter();
    settings.custom_properties = each
        .map(|(name, value)| CustomProperty {
            name: name.clone(),
            value: text(value),
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_engines_for_a_blank_template_vm() {
        let settings: VmSettings = serde_json::from_str("{}").expect("an older state's VM");
        assert_eq!(settings, VmSettings::default());
        let body = settings_json(&settings, 1 << 30, EngineVersion::default());
        assert_eq!(body["bios"]["type"], "q35_ovmf");
        assert_eq!(body["cpu"]["topology"]["sockets"], "1");
        assert_eq!(body["memory_policy"]["guaranteed"], "1073741824");
        assert_eq!(body["memory_policy"]["max"], "4294967296");
        assert_eq!(body["os"]["boot"]["devices"]["device"][0], "hd");
        assert_eq!(
            (&body["type"], &body["time_zone"]["name"]),
            (&json!("server"), &json!("Etc/GMT"))
        );
        assert!(body.get("custom_emulated_machine").is_none());
        let old = EngineVersion { major: 4, minor: 3 };
        assert_eq!(settings.bios_type(old), "i440fx_sea_bios");
    }

    #[test]
    fn a_request_changes_what_it_names_and_refuses_unknown_kinds() {
        let request: SettingsRequest = serde_json::from_value(json!({
            "cpu": {"topology": {"sockets": "2", "cores": 4}},
            "bios": {"type": "cluster_default"}, "type": "high_performance",
            "os": {"type": "windows_2019x64", "boot": {"devices": {"device": ["network", "hd"]}}},
            "high_availability": {"enabled": "true", "priority": "50"},
            "custom_properties": {"custom_property": {"name": "hugepages", "value": "1048576"}},
        }))
        .expect("a request");
        let settings = VmSettings {
            bios_type: Some("i440fx_sea_bios".into()),
            ..VmSettings::default()
        };
        let changed = request.apply(&settings).expect("valid");
        assert_eq!((changed.cpu.sockets, changed.cpu.cores), (2, 4));
        assert_eq!(changed.bios_type, None, "cluster_default: the cluster's");
        assert_eq!(changed.boot_devices, ["network", "hd"]);
        assert_eq!(changed.time_zone(), "GMT Standard Time");
        assert_eq!(changed.high_availability.priority, 50);
        assert_eq!(changed.custom_properties[0].name, "hugepages");
        let bad: SettingsRequest =
            serde_json::from_value(json!({"bios": {"type": "uefi"}})).expect("a request");
        let refused = bad.apply(&settings).expect_err("not a BiosType");
        assert!(
            refused
                .detail()
                .starts_with("uefi is not a member of BiosType")
        );
    }

    #[test]
    fn memory_over_its_maximum_is_refused() {
        let settings = VmSettings {
            memory_max: Some(1 << 30),
            ..VmSettings::default()
        };
        let refused = check_memory(&settings, 2 << 30, "add").expect_err("over the max");
        assert_eq!(
            refused.detail(),
            "Cannot add VM. Memory size (2048MB) cannot exceed maximum memory size (1024MB)."
        );
    }
}
