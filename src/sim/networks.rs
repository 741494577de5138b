//! Logical networks and their vNIC profiles (section 4 of the API page; issue 16): what a VM's
//! NIC connects to, read by `ovrun backup` (a NIC's profile and network by name) and
//! `ovrun restore` (the DR profiles to map production's onto). `ovirtmgmt`, with its profile of
//! the same name and the engine's well-known ids, is always there; the seed adds others
//! (`networks: [{"name": "front", "vnic_profiles": ["front", "front-qos"]}]`, a network's
//! profile named as it by default, as the engine makes one with each network). ovsim has one
//! data center, and every network is in every cluster.
//!
//! Routes: `/networks` (search `name=`), `/networks/{id}` and its `vnicprofiles`,
//! `/vnicprofiles`, `/vnicprofiles/{id}`, and a cluster's and the data center's networks.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::inventory::{Inventory, Named, SeedNetwork, VnicProfile, id_of};
use super::reply::{not_found, represent};
use super::resources::{ListQuery, data_center_id};
use super::state::{API, Engine};

/// The management network's id on every engine (its database's initial data).
pub const OVIRTMGMT: &str = "00000000-0000-0000-0000-000000000009";

/// The id of `ovirtmgmt`'s vNIC profile on every engine.
pub const OVIRTMGMT_PROFILE: &str = "0000000a-000a-000a-000a-000000000398";

/// The routes of networks and vNIC profiles.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/api/networks", get(networks))
        .route("/ovirt-engine/api/networks/{id}", get(network))
        .route(
            "/ovirt-engine/api/networks/{id}/vnicprofiles",
            get(network_profiles),
        )
        .route("/ovirt-engine/api/vnicprofiles", get(profiles))
        .route("/ovirt-engine/api/vnicprofiles/{id}", get(profile))
        .route(
            "/ovirt-engine/api/clusters/{id}/networks",
            get(cluster_networks),
        )
        .route(
            "/ovirt-engine/api/datacenters/{id}/networks",
            get(data_center_networks),
        )
}

impl Inventory {
    /// Adds `ovirtmgmt` and the seed's networks with their profiles.
    pub(crate) fn add_seed_networks(&mut self, seeds: &[SeedNetwork]) {
        self.add_management_network();
        for seed in seeds {
            let network = self.network_named(&seed.name);
            let default = || vec![seed.name.clone()];
            for name in seed.vnic_profiles.clone().unwrap_or_else(default) {
                self.add_profile(&network, &name);
            }
        }
    }

    /// Adds `ovirtmgmt` and its profile if they are missing (a state made before ovsim had
    /// networks).
    pub(crate) fn add_management_network(&mut self) {
        self.network_named("ovirtmgmt");
        self.add_profile(OVIRTMGMT, "ovirtmgmt");
    }

    /// The id of the network named `name`, added if there is none.
    fn network_named(&mut self, name: &str) -> String {
        if let Some(found) = self.networks.iter().find(|n| n.name == name) {
            return found.id.clone();
        }
        let id = if name == "ovirtmgmt" {
            OVIRTMGMT.to_owned()
        } else {
            id_of("network", name)
        };
        let named = name.to_owned();
        self.networks.push(Named { id, name: named });
        self.networks.last().expect("just added").id.clone()
    }

    /// Adds profile `name` to network `network` unless it has one of that name.
    fn add_profile(&mut self, network: &str, name: &str) {
        let exists = |p: &VnicProfile| p.network == network && p.name == name;
        if self.vnic_profiles.iter().any(exists) {
            return;
        }
        let id = if network == OVIRTMGMT && name == "ovirtmgmt" {
            OVIRTMGMT_PROFILE.to_owned()
        } else {
            id_of("vnicprofile", &format!("{network}/{name}"))
        };
        let (name, network) = (name.to_owned(), network.to_owned());
        self.vnic_profiles.push(VnicProfile { id, name, network });
    }

    /// The vNIC profile with `id`.
    pub(crate) fn vnic_profile(&self, id: &str) -> Option<&VnicProfile> {
        self.vnic_profiles.iter().find(|p| p.id == id)
    }

    /// The name of the network with `id`.
    pub(crate) fn network_name(&self, id: &str) -> Option<&str> {
        let found = self.networks.iter().find(|n| n.id == id);
        found.map(|n| n.name.as_str())
    }
}

fn href(kind: &str, id: &str) -> String {
    format!("{API}/{kind}/{id}")
}

fn reference(kind: &str, id: &str) -> Value {
    json!({"href": href(kind, id), "id": id})
}

/// A network as `/networks` gives it (not in a cluster: no usages beyond `vm`).
fn network_json(network: &Named) -> Value {
    let id = &network.id;
    let description = if id == OVIRTMGMT {
        "Management Network"
    } else {
        ""
    };
    let link =
        json!({"href": format!("{}/vnicprofiles", href("networks", id)), "rel": "vnicprofiles"});
    json!({
        "id": id, "href": href("networks", id), "name": network.name,
        "description": description, "comment": "", "link": [link],
        "mtu": "0", "port_isolation": "false", "stp": "false",
        "usages": {"usage": ["vm"]}, "vdsm_name": network.name,
        "data_center": reference("datacenters", &data_center_id()),
    })
}

/// A network as a cluster has it: its role there (the management network's too), required and
/// operational.
fn cluster_network_json(network: &Named, cluster: &str) -> Value {
    let mut body = network_json(network);
    body["href"] = json!(format!(
        "{}/networks/{}",
        href("clusters", cluster),
        network.id
    ));
    if network.id == OVIRTMGMT {
        let roles = ["vm", "management", "display", "migration", "default_route"];
        body["usages"] = json!({ "usage": roles });
    }
    body["cluster"] = reference("clusters", cluster);
    body["display"] = json!(flag(network.id == OVIRTMGMT));
    body["required"] = json!("true");
    body["status"] = json!("operational");
    body
}

fn flag(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// A vNIC profile in the engine's shape.
pub(crate) fn profile_json(profile: &VnicProfile) -> Value {
    json!({
        "id": profile.id, "href": href("vnicprofiles", &profile.id), "name": profile.name,
        "description": "", "pass_through": {"mode": "disabled"}, "port_mirroring": "false",
        "network": reference("networks", &profile.network),
    })
}

/// `GET /networks[?search=name=X]`.
async fn networks(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    let filter = query.filter();
    let each = inventory.networks.iter();
    let found: Vec<Value> = (each.filter(|n| filter.matches_name(&n.name)))
        .map(network_json)
        .collect();
    represent(
        &headers,
        "networks",
        &json!({"network": filter.window(found)}),
    )
}

/// `GET /networks/{id}`.
async fn network(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    match inventory.networks.iter().find(|n| n.id == id) {
        Some(network) => represent(&headers, "network", &network_json(network)),
        None => not_found(),
    }
}

/// The profiles in `inventory` that `keep` keeps, as a list.
fn profile_list(
    headers: &HeaderMap,
    inventory: &Inventory,
    keep: impl Fn(&VnicProfile) -> bool,
) -> Response {
    let each = inventory.vnic_profiles.iter().filter(|p| keep(p));
    let found: Vec<Value> = each.map(profile_json).collect();
    represent(headers, "vnic_profiles", &json!({ "vnic_profile": found }))
}

/// `GET /vnicprofiles`: every profile (the engine has no search here).
async fn profiles(State(engine): State<Arc<Engine>>, headers: HeaderMap) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    profile_list(&headers, &inventory, |_| true)
}

/// `GET /networks/{id}/vnicprofiles`.
async fn network_profiles(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    if inventory.network_name(&id).is_none() {
        return not_found();
    }
    profile_list(&headers, &inventory, |p| p.network == id)
}

/// `GET /vnicprofiles/{id}`.
async fn profile(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    match inventory.vnic_profile(&id) {
        Some(profile) => represent(&headers, "vnic_profile", &profile_json(profile)),
        None => not_found(),
    }
}

/// `GET /clusters/{id}/networks`: every network, as the cluster has it.
async fn cluster_networks(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    if !inventory.clusters.iter().any(|c| c.id == id) {
        return not_found();
    }
    let each = inventory.networks.iter();
    let found: Vec<Value> = each.map(|n| cluster_network_json(n, &id)).collect();
    represent(&headers, "networks", &json!({ "network": found }))
}

/// `GET /datacenters/{id}/networks`: every network (ovsim has one data center).
async fn data_center_networks(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if id != data_center_id() {
        return not_found();
    }
    let inventory = engine.inventory.lock().expect("inventory lock");
    let found: Vec<Value> = inventory.networks.iter().map(network_json).collect();
    represent(&headers, "networks", &json!({ "network": found }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ovirtmgmt_is_always_there_and_a_network_gets_its_own_profile() {
        let mut inventory = Inventory::default();
        let seed: Vec<SeedNetwork> = serde_json::from_value(json!([
            {"name": "front", "vnic_profiles": ["front", "front-qos"]}, {"name": "back"},
            {"name": "ovirtmgmt"}
        ]))
        .expect("networks");
        inventory.add_seed_networks(&seed);
        let names: Vec<&str> = inventory.networks.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["ovirtmgmt", "front", "back"]);
        let profiles: Vec<(&str, Option<&str>)> = (inventory.vnic_profiles.iter())
            .map(|p| (p.name.as_str(), inventory.network_name(&p.network)))
            .collect();
        assert_eq!(
            profiles,
            [
                ("ovirtmgmt", Some("ovirtmgmt")),
                ("front", Some("front")),
                ("front-qos", Some("front")),
                ("back", Some("back"))
            ]
        );
        assert_eq!(inventory.vnic_profiles[0].id, OVIRTMGMT_PROFILE);
        inventory.add_management_network();
        assert_eq!(inventory.vnic_profiles.len(), 4, "added once");
    }
}
