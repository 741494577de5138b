//! A VM's network interfaces (issue 16): `GET`/`POST /vms/{id}/nics` and `GET`/`DELETE
//! /vms/{id}/nics/{nic}`, with the engine's checks and words (`AddVmInterfaceCommand`,
//! `RemoveVmInterfaceCommand`): a name unique in the VM, a vNIC profile that exists, a MAC
//! that no other NIC on this engine has (or the next free one of its pool,
//! `56:6f:XX:XX:00:00`-`56:6f:XX:XX:ff:ff`, [`super::inventory::Inventory::mac_pool`]), no
//! removal of a plugged NIC from a running VM. NICs live in their VM, so they go with it.
//! The seed's NICs are added here too, through the same checks.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{Body, Flag, Reference, Text};
use super::inventory::{Inventory, Nic, SeedVm, Vm, id_of};
use super::reply::{Refusal, created, fault, not_found, represent};
use super::settings::member;
use super::state::{API, Engine};

/// NIC models (`NicInterface`).
const INTERFACES: [&str; 7] = [
    "e1000",
    "e1000e",
    "pci_passthrough",
    "rtl8139",
    "rtl8139_virtio",
    "spapr_vlan",
    "virtio",
];

/// The routes of VMs' NICs.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/api/vms/{id}/nics", get(list).post(add))
        .route(
            "/ovirt-engine/api/vms/{id}/nics/{nic}",
            get(one).delete(remove),
        )
}

/// NIC `nic` of VM `vm` in the engine's shape.
pub(crate) fn nic_json(vm: &str, nic: &Nic) -> Value {
    let vm_href = format!("{API}/vms/{vm}");
    let mut body = json!({
        "id": nic.id, "href": format!("{vm_href}/nics/{}", nic.id), "name": nic.name,
        "interface": nic.interface, "linked": flag(nic.linked), "plugged": flag(nic.plugged),
        "synced": "true", "mac": {"address": nic.mac},
        "vm": {"href": vm_href, "id": vm},
    });
    if let Some(profile) = &nic.vnic_profile {
        body["vnic_profile"] =
            json!({"href": format!("{API}/vnicprofiles/{profile}"), "id": profile});
    }
    body
}

fn flag(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// `GET /vms/{id}/nics`.
async fn list(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    let Some(vm) = inventory.vm(&id) else {
        return not_found();
    };
    let found: Vec<Value> = vm.nics.iter().map(|n| nic_json(&id, n)).collect();
    represent(&headers, "nics", &json!({ "nic": found }))
}

/// `GET /vms/{id}/nics/{nic}`.
async fn one(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path((id, nic)): Path<(String, String)>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    let found = inventory
        .vm(&id)
        .and_then(|vm| vm.nics.iter().find(|n| n.id == nic));
    match found {
        Some(nic) => represent(&headers, "nic", &nic_json(&id, nic)),
        None => not_found(),
    }
}

#[derive(Debug, Deserialize)]
struct NicRequest {
    name: Option<Text>,
    interface: Option<String>,
    linked: Option<Flag>,
    plugged: Option<Flag>,
    mac: Option<MacRequest>,
    /// By id only: the engine ignores a profile's name here (a NIC on no network).
    vnic_profile: Option<Reference>,
}

#[derive(Debug, Deserialize)]
struct MacRequest {
    address: Option<Text>,
}

/// A NIC to add, before the engine's checks.
struct NewNic {
    name: String,
    interface: String,
    mac: Option<String>,
    vnic_profile: Option<String>,
    linked: bool,
    plugged: bool,
}

impl NicRequest {
    /// The NIC it asks for: a name is required; `virtio`, linked and plugged unless it says
    /// otherwise.
    fn new_nic(self) -> Result<NewNic, Refusal> {
        let name = self.name.map(|n| n.value()).filter(|n| !n.is_empty());
        let Some(name) = name else {
            return Err(Refusal::incomplete("Nic [name] required for add"));
        };
        let interface = self.interface.unwrap_or_else(|| "virtio".into());
        let address = self.mac.and_then(|m| m.address).map(|a| a.value());
        Ok(NewNic {
            name,
            interface: member(&interface, "NicInterface", &INTERFACES)?,
            mac: address.filter(|a| !a.is_empty()),
            vnic_profile: self.vnic_profile.and_then(|p| p.id),
            linked: self.linked.as_ref().is_none_or(Flag::value),
            plugged: self.plugged.as_ref().is_none_or(Flag::value),
        })
    }
}

/// `POST /vms/{id}/nics`: adds a NIC (201 with it).
async fn add(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(request): Body<NicRequest>,
) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let admitted = request
        .new_nic()
        .and_then(|new| inventory.admit_nic(&id, new));
    let nic = match admitted {
        Ok(nic) => nic,
        Err(refused) => return refused.into_response(),
    };
    let body = nic_json(&id, &nic);
    inventory.vm_mut(&id).expect("admitted").nics.push(nic);
    engine.save(&inventory);
    created(&headers, "nic", &body)
}

/// `DELETE /vms/{id}/nics/{nic}`: a plugged NIC of a VM that is not down stays.
async fn remove(
    State(engine): State<Arc<Engine>>,
    Path((id, nic)): Path<(String, String)>,
) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(vm) = inventory.vm_mut(&id) else {
        return not_found();
    };
    let Some(index) = vm.nics.iter().position(|n| n.id == nic) else {
        return not_found();
    };
    let running = !matches!(vm.status.as_str(), "down" | "image_locked");
    if running && vm.nics[index].plugged {
        return fault(
            StatusCode::CONFLICT,
            "Cannot remove Interface. The VM Network Interface is plugged to a running VM.",
        );
    }
    vm.nics.remove(index);
    engine.save(&inventory);
    StatusCode::OK.into_response()
}

/// Whether `mac` is six hexadecimal pairs separated by colons.
fn well_formed(mac: &str) -> bool {
    let pairs: Vec<&str> = mac.split(':').collect();
    pairs.len() == 6
        && (pairs.iter()).all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A MAC a NIC may be given: well formed, not multicast, not another NIC's on this engine.
fn check_mac(inventory: &Inventory, mac: &str) -> Result<(), Refusal> {
    if !well_formed(mac) {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            "MAC address must be in format \"HH:HH:HH:HH:HH:HH\" where H is a hexadecimal character (either a digit or A-F, case is insignificant).",
        ));
    }
    if u8::from_str_radix(&mac[..2], 16).is_ok_and(|first| first & 1 == 1) {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            "Multi-cast MAC address is not allowed.",
        ));
    }
    match inventory.mac_user(mac) {
        Some(vm) => {
            let why = format!(
                "MAC Address {mac} is already in use by VM or snapshot: {}.",
                vm.name
            );
            Err(Refusal::fault(StatusCode::CONFLICT, &why))
        }
        None => Ok(()),
    }
}

impl Inventory {
    /// The VM with a NIC of MAC `mac` (case is insignificant).
    pub(crate) fn mac_user(&self, mac: &str) -> Option<&Vm> {
        let same = |n: &Nic| n.mac.eq_ignore_ascii_case(mac);
        self.vms.iter().find(|vm| vm.nics.iter().any(same))
    }

    /// The first MAC of this engine's pool that no NIC has.
    fn free_mac(&self) -> Option<String> {
        let taken: HashSet<String> = (self.vms.iter())
            .flat_map(|vm| vm.nics.iter().map(|n| n.mac.to_ascii_lowercase()))
            .collect();
        let [high, low] = self.mac_pool;
        (0..=u16::MAX)
            .map(|n| format!("56:6f:{high:02x}:{low:02x}:{:02x}:{:02x}", n >> 8, n & 0xff))
            .find(|mac| !taken.contains(mac))
    }

    /// The NIC `new` of VM `vm_id` after the engine's checks (its MAC from the pool when it
    /// names none).
    fn admit_nic(&self, vm_id: &str, new: NewNic) -> Result<Nic, Refusal> {
        let Some(vm) = self.vm(vm_id) else {
            return Err(Refusal::NotFound);
        };
        if vm.nics.iter().any(|n| n.name == new.name) {
            let why = "Network interface name is already in use";
            return Err(Refusal::fault(StatusCode::CONFLICT, why));
        }
        let profile = new.vnic_profile.as_deref();
        if profile.is_some_and(|p| self.vnic_profile(p).is_none()) {
            return Err(Refusal::fault(
                StatusCode::BAD_REQUEST,
                "Cannot add Interface. The specified VM network interface profile doesn't exist.",
            ));
        }
        Ok(Nic {
            id: uuid::Uuid::new_v4().to_string(),
            mac: self.nic_mac(new.mac)?,
            name: new.name,
            interface: new.interface,
            vnic_profile: new.vnic_profile,
            linked: new.linked,
            plugged: new.plugged,
        })
    }

    /// The MAC a new NIC gets: the one asked for, checked, else the pool's next.
    fn nic_mac(&self, asked: Option<String>) -> Result<String, Refusal> {
        if let Some(mac) = asked {
            check_mac(self, &mac)?;
            return Ok(mac.to_ascii_lowercase());
        }
        self.free_mac().ok_or_else(|| {
            let why = "Cannot add Interface. Not enough MAC addresses left in MAC Address Pool.";
            Refusal::fault(StatusCode::CONFLICT, why)
        })
    }

    /// Adds seed VM `seed`'s NICs to VM `vm_id`, checked as the API checks them, each profile
    /// named by its name.
    ///
    /// # Errors
    /// A NIC the engine would refuse, or a profile no network has.
    pub(crate) fn add_seed_nics(&mut self, vm_id: &str, seed: &SeedVm) -> Result<(), String> {
        for seed_nic in &seed.nics {
            let why =
                |what: &str| format!("seed VM {:?} NIC {:?}: {what}", seed.name, seed_nic.name);
            let profile = match &seed_nic.vnic_profile {
                Some(name) => Some(self.profile_named(name).ok_or_else(|| {
                    why(&format!("no network has a vNIC profile named {name:?}"))
                })?),
                None => None,
            };
            let new = NewNic {
                name: seed_nic.name.clone(),
                interface: member(&seed_nic.interface, "NicInterface", &INTERFACES)
                    .map_err(|r| why(r.detail()))?,
                mac: seed_nic.mac.clone(),
                vnic_profile: profile,
                linked: seed_nic.linked,
                plugged: seed_nic.plugged,
            };
            let mut nic = self.admit_nic(vm_id, new).map_err(|r| why(r.detail()))?;
            nic.id = id_of("nic", &format!("{}/{}", seed.name, seed_nic.name));
            self.vm_mut(vm_id).expect("admitted").nics.push(nic);
        }
        Ok(())
    }

    /// The id of the first vNIC profile named `name`.
    fn profile_named(&self, name: &str) -> Option<String> {
        let found = self.vnic_profiles.iter().find(|p| p.name == name);
        found.map(|p| p.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_checked_and_the_pool_gives_the_first_free_one() {
        let mut inventory = Inventory {
            mac_pool: [0x1a, 0x2b],
            ..Inventory::default()
        };
        inventory.add_management_network();
        inventory.vms.push(Vm {
            id: "v1".into(),
            name: "web01".into(),
            status: "down".into(),
            cluster: String::new(),
            host: None,
            memory: 1 << 30,
            attachments: Vec::new(),
            pending_status: Vec::new(),
            description: String::new(),
            settings: super::super::settings::VmSettings::default(),
            nics: Vec::new(),
        });
        let new = |name: &str, mac: Option<&str>| NewNic {
            name: name.into(),
            interface: "virtio".into(),
            mac: mac.map(str::to_owned),
            vnic_profile: None,
            linked: true,
            plugged: true,
        };
        let first = inventory
            .admit_nic("v1", new("nic1", None))
            .expect("from the pool");
        assert_eq!(first.mac, "56:6f:1a:2b:00:00");
        inventory.vms[0].nics.push(first);
        let second = inventory
            .admit_nic("v1", new("nic2", None))
            .expect("from the pool");
        assert_eq!(second.mac, "56:6f:1a:2b:00:01");
        let taken = inventory.admit_nic("v1", new("nic2", Some("56:6F:1A:2B:00:00")));
        assert!(
            taken
                .expect_err("in use")
                .detail()
                .contains("in use by VM or snapshot: web01")
        );
        let multicast = inventory.admit_nic("v1", new("nic2", Some("01:00:5e:00:00:01")));
        assert!(multicast.is_err());
        assert!(!well_formed("56:6f:1a:2b:00"));
    }
}
