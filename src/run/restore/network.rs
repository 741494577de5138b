//! Which DR vNIC profile each NIC of a point goes on: the policy's `restore_settings.network_map`
//! entry for its production vNIC profile or network (the profile's entry first: it is the more
//! precise), else a DR profile of the same name as its production profile. A NIC whose network
//! has neither is an error named before anything is made in DR (also by `--dry-run`): a DR VM
//! whose NIC lands on the wrong network is worse than no restore.

use std::collections::BTreeMap;

use crate::run::catalog::NicConfig;
use crate::run::engine::VnicProfile;
use crate::run::job::RunError;

/// The DR profile (id and name) of one NIC; `None` for a NIC on no network.
pub(super) type Placement = Option<(String, String)>;

/// The DR profile of each of `nics`, in order.
///
/// # Errors
/// [`RunError::Config`] naming every NIC without a DR profile, or a DR profile name that is
/// not unique.
pub(super) fn place_nics(
    nics: &[NicConfig],
    map: &BTreeMap<String, String>,
    profiles: &[VnicProfile],
) -> Result<Vec<Placement>, RunError> {
    let mut placed = Vec::new();
    let mut problems = Vec::new();
    for nic in nics {
        match place(nic, map, profiles) {
            Ok(placement) => placed.push(placement),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        return Ok(placed);
    }
    Err(RunError::Config(problems.join("; ")))
}

/// One NIC's DR profile, or what is wrong.
fn place(
    nic: &NicConfig,
    map: &BTreeMap<String, String>,
    profiles: &[VnicProfile],
) -> Result<Placement, String> {
    let Some(profile) = &nic.vnic_profile else {
        return Ok(None);
    };
    let network = nic.network.as_deref().unwrap_or(profile);
    let mapped = map.get(profile).or_else(|| map.get(network));
    let wanted = mapped.unwrap_or(profile);
    let found: Vec<&VnicProfile> = profiles
        .iter()
        .filter(|p| p.name.as_deref() == Some(wanted.as_str()))
        .collect();
    match found.as_slice() {
        [one] => Ok(Some((one.id.clone(), wanted.clone()))),
        [] if mapped.is_some() => Err(format!(
            "NIC {} (network {network:?}): restore_settings.network_map sends it to vNIC profile \
             {wanted:?}, which the DR engine does not have; correct the map's entry",
            nic.name
        )),
        [] => Err(format!(
            "NIC {} is on network {network:?} (vNIC profile {profile:?}), which the DR engine \
             has no vNIC profile of that name for; add \"{network}\": \"<DR vNIC profile>\" to \
             restore_settings.network_map",
            nic.name
        )),
        _ => Err(format!(
            "NIC {}: the DR engine has {} vNIC profiles named {wanted:?}; map the network to an \
             unambiguous one in restore_settings.network_map",
            nic.name,
            found.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(name: &str, profile: Option<&str>, network: Option<&str>) -> NicConfig {
        NicConfig {
            name: name.into(),
            interface: "virtio".into(),
            mac: None,
            vnic_profile: profile.map(Into::into),
            network: network.map(Into::into),
            linked: true,
            plugged: true,
        }
    }

    fn profile(id: &str, name: &str) -> VnicProfile {
        VnicProfile {
            id: id.into(),
            name: Some(name.into()),
            network: None,
        }
    }

    #[test]
    fn the_map_wins_then_the_same_name_and_a_nic_without_network_stays_so() {
        let dr = [
            profile("p1", "dr-front"),
            profile("p2", "backend"),
            profile("p3", "mgmt"),
        ];
        let map = BTreeMap::from([("front".to_owned(), "dr-front".to_owned())]);
        let nics = [
            nic("nic1", Some("front"), Some("front")),
            nic("nic2", Some("backend"), Some("backend")),
            nic("nic3", None, None),
        ];
        let placed = place_nics(&nics, &map, &dr).expect("placed");
        assert_eq!(
            placed,
            [
                Some(("p1".into(), "dr-front".into())),
                Some(("p2".into(), "backend".into())),
                None
            ]
        );
    }

    #[test]
    fn a_network_dr_lacks_is_named_with_what_to_add() {
        let dr = [profile("p1", "front")];
        let nics = [
            nic("nic1", Some("front"), Some("front")),
            nic("nic2", Some("storage"), Some("san")),
        ];
        let error = place_nics(&nics, &BTreeMap::new(), &dr).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, RunError::Config(_)));
        assert!(text.contains("NIC nic2 is on network \"san\""), "{text}");
        assert!(
            text.contains("add \"san\": \"<DR vNIC profile>\""),
            "{text}"
        );
        let wrong = BTreeMap::from([("front".to_owned(), "nowhere".to_owned())]);
        let text = place_nics(&nics[..1], &wrong, &dr).unwrap_err().to_string();
        assert!(
            text.contains("\"nowhere\", which the DR engine does not have"),
            "{text}"
        );
    }
}
