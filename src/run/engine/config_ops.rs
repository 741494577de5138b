//! The engine operations around a VM's configuration (issue 16): reading it whole with its
//! NICs and what they name, and on the DR side finding vNIC profiles and adding NICs.

use serde_json::json;

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
