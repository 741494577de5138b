//! The engine operations around a VM's configuration (issue 16): reading it whole with its
//! NICs and what they name, and on the DR side finding vNIC profiles and adding NICs.

use serde_json::{Value, json};

use crate::run::catalog::VmConfig;

use super::wire::{Network, Nic, Nics, VmDetails, VnicProfile, VnicProfiles};
use super::{EngineClient, EngineError};

/// A NIC to add to a new VM.
#[derive(Debug, Clone)]
pub struct NicRequest<'a> {
    /// Name (`nic1`).
    pub name: &'a str,
    /// `virtio`, `e1000`, ...
    pub interface: &'a str,
    /// The vNIC profile's id (none: on no network).
    pub vnic_profile: Option<&'a str>,
    /// The MAC to keep (none: the engine's pool gives one).
    pub mac: Option<&'a str>,
    /// Link up.
    pub linked: bool,
    /// Plugged.
    pub plugged: bool,
}

/// A VM's configuration.
impl EngineClient {
    /// VM `id` with its whole configuration (`all_content=true`: with its OVF).
    ///
    /// # Errors
    /// The call fails.
    pub async fn vm_details(&self, id: &str) -> Result<VmDetails, EngineError> {
        self.get(&format!("/vms/{id}?all_content=true")).await
    }

    /// VM `id`'s NICs.
    ///
    /// # Errors
    /// The call fails.
    pub async fn nics(&self, vm_id: &str) -> Result<Vec<Nic>, EngineError> {
        Ok(self.get::<Nics>(&format!("/vms/{vm_id}/nics")).await?.nic)
    }

    /// vNIC profile `id`.
    ///
    /// # Errors
    /// The call fails.
    pub async fn vnic_profile(&self, id: &str) -> Result<VnicProfile, EngineError> {
        self.get(&format!("/vnicprofiles/{id}")).await
    }

    /// Every vNIC profile.
    ///
    /// # Errors
    /// The call fails.
    pub async fn vnic_profiles(&self) -> Result<Vec<VnicProfile>, EngineError> {
        Ok(self
            .get::<VnicProfiles>("/vnicprofiles")
            .await?
            .vnic_profile)
    }

    /// Network `id`.
    ///
    /// # Errors
    /// The call fails.
    pub async fn network(&self, id: &str) -> Result<Network, EngineError> {
        self.get(&format!("/networks/{id}")).await
    }

    /// Adds a NIC to VM `vm_id`.
    ///
    /// # Errors
    /// The engine refused (a MAC in use, an unknown profile).
    pub async fn add_nic(&self, vm_id: &str, nic: &NicRequest<'_>) -> Result<Nic, EngineError> {
        let mut body = json!({
            "name": nic.name, "interface": nic.interface,
            "linked": nic.linked.to_string(), "plugged": nic.plugged.to_string(),
        });
        if let Some(profile) = nic.vnic_profile {
            body["vnic_profile"] = json!({"id": profile});
        }
        if let Some(mac) = nic.mac {
            body["mac"] = json!({"address": mac});
        }
        self.post(&format!("/vms/{vm_id}/nics"), &body).await
    }
}

/// Adds a recorded configuration's fields to a new VM's body (`POST /vms`): the engine's own
/// names, each only when the point recorded it (the engine's default otherwise).
pub(super) fn add_config_fields(body: &mut Value, config: &VmConfig) {
    if let Some(cpu) = config.cpu {
        body["cpu"] = json!({"topology": {"sockets": cpu.sockets.to_string(),
            "cores": cpu.cores.to_string(), "threads": cpu.threads.to_string()}});
    }
    add_memory(body, config);
    let text = |value: &Option<String>| value.clone().map(Value::String);
    let fields = [
        ("bios", text(&config.bios_type).map(|t| json!({"type": t}))),
        ("custom_emulated_machine", text(&config.machine_type)),
        ("type", text(&config.vm_type)),
        (
            "time_zone",
            text(&config.time_zone).map(|z| json!({"name": z})),
        ),
        ("comment", text(&config.comment)),
        ("description", text(&config.description)),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    add_os(body, config);
    if let Some(ha) = config.high_availability {
        body["high_availability"] = json!({"enabled": ha.enabled.to_string(),
            "priority": ha.priority.unwrap_or(0).to_string()});
    }
    if !config.custom_properties.is_empty() {
        let each: Vec<Value> = config
            .custom_properties
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        body["custom_properties"] = json!({"custom_property": each});
    }
}

fn add_memory(body: &mut Value, config: &VmConfig) {
    let memory = &config.memory;
    if let Some(size) = memory.size {
        body["memory"] = json!(size.to_string());
        let guaranteed = memory.guaranteed.unwrap_or(size);
        let max = memory.max.unwrap_or(size).max(size);
        body["memory_policy"] =
            json!({"guaranteed": guaranteed.to_string(), "max": max.to_string()});
    }
}

fn add_os(body: &mut Value, config: &VmConfig) {
    let Some(os_type) = &config.os_type else {
        return;
    };
    body["os"] = json!({"type": os_type});
    if !config.boot_devices.is_empty() {
        body["os"]["boot"] = json!({"devices": {"device": config.boot_devices}});
    }
}
