//! `ovrun config`: the VM configuration a point recorded (issue 16), for a person (aligned
//! lines) or a program (JSON): what a restore gives the DR VM before the policy's overrides.

use std::fmt::Write as _;

use super::catalog::{AttachmentConfig, CpuTopology, Manifest, NicConfig, VmConfig};

/// The point `id` names among `points`, or the newest.
///
/// # Errors
/// No point, or none with that id (the words name the newest ids).
pub fn chosen<'a>(points: &'a [Manifest], id: Option<&str>) -> Result<&'a Manifest, String> {
    let found = match id {
        Some(id) => points.iter().find(|p| p.point == id),
        None => points.last(),
    };
    found.ok_or_else(|| match id {
        Some(id) => {
            let newest: Vec<&str> = points
                .iter()
                .rev()
                .take(3)
                .map(|p| p.point.as_str())
                .collect();
            format!("no point {id}; the newest are: {}", newest.join(", "))
        }
        None => "no backup point yet".into(),
    })
}

/// The point's configuration as JSON (`null` for a point taken before configurations were
/// recorded), with the point's id and VM.
pub fn json(point: &Manifest) -> String {
    let value = serde_json::json!({
        "vm": point.vm, "point": point.point, "taken_at": point.taken_at,
        "config": point.config,
    });
    serde_json::to_string_pretty(&value).expect("a configuration serializes") + "\n"
}

/// The configuration in one line (for `ovrun status`): CPU, memory, firmware, OS, NICs, disks.
pub fn one_line(config: &VmConfig) -> String {
    let cpu = config.cpu.map_or("CPU -".into(), |c| {
        format!(
            "{} vCPU ({}x{}x{})",
            c.sockets * c.cores * c.threads,
            c.sockets,
            c.cores,
            c.threads
        )
    });
    let memory = config
        .memory
        .size
        .map_or("memory -".into(), |b| indicatif::BinaryBytes(b).to_string());
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    format!(
        "{cpu}, {memory}, {}, {}, {} NIC(s), {} disk(s)",
        text(&config.bios_type),
        text(&config.os_type),
        config.nics.len(),
        config.disks.len()
    )
}

/// The point's configuration for a person.
pub fn human(point: &Manifest) -> String {
    let mut out = format!(
        "{} at point {} (taken {})\n",
        point.vm, point.point, point.taken_at
    );
    let Some(config) = &point.config else {
        out.push_str("no configuration recorded (a point taken before ovrun recorded them)\n");
        return out;
    };
    let lines = summary(config)
        .into_iter()
        .map(|(name, value)| format!("{name:<18} {value}"));
    let lines = lines.chain(config.nics.iter().map(nic_line));
    let disks = config.disks.iter().enumerate();
    let lines = lines.chain(disks.map(|(order, disk)| disk_line(point, order, disk)));
    for line in lines {
        let _ = writeln!(out, "  {line}");
    }
    out
}

fn nic_line(nic: &NicConfig) -> String {
    let on = match (&nic.vnic_profile, &nic.network) {
        (Some(profile), Some(network)) => format!("profile {profile} (network {network})"),
        (Some(profile), None) => format!("profile {profile}"),
        _ => "no network".into(),
    };
    let mac = nic.mac.as_deref().unwrap_or("-");
    let state = flags([(nic.linked, "linked"), (nic.plugged, ", plugged")]);
    format!(
        "nic {:<14} {} {mac} on {on}; {state}",
        nic.name, nic.interface
    )
}

fn disk_line(point: &Manifest, order: usize, disk: &AttachmentConfig) -> String {
    let entry = point.disks.iter().find(|d| d.id == disk.disk);
    let alias = entry.map_or(disk.disk.as_str(), |d| d.alias.as_str());
    let name = disk.logical_name.as_deref().unwrap_or("-");
    let flags = flags([(disk.bootable, "bootable "), (disk.active, "active")]);
    let numbered = format!("{}. {alias}", order + 1);
    format!("disk {numbered:<13} {} {name} {flags}", disk.interface)
}

/// A CPU topology in words.
pub fn cpu_words(cpu: CpuTopology) -> String {
    format!(
        "{} socket(s) x {} core(s) x {} thread(s)",
        cpu.sockets, cpu.cores, cpu.threads
    )
}

/// The words of the flags that are on.
fn flags(each: [(bool, &str); 2]) -> String {
    each.iter()
        .filter(|(on, _)| *on)
        .map(|(_, word)| *word)
        .collect()
}

/// `-` for nothing, else the items joined.
fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn high_availability(config: &VmConfig) -> String {
    let ha = config.high_availability;
    ha.map_or("-".into(), |h| match (h.enabled, h.priority) {
        (true, Some(p)) => format!("on (priority {p})"),
        (true, None) => "on".into(),
        (false, _) => "off".into(),
    })
}

/// The scalar settings, in the order the engine's VM dialog shows them.
fn summary(config: &VmConfig) -> Vec<(&'static str, String)> {
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let bytes = |v: Option<u64>| v.map_or("-".into(), |b| indicatif::BinaryBytes(b).to_string());
    let properties: Vec<String> = config
        .custom_properties
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    let ovf = config
        .ovf
        .as_ref()
        .map(|o| format!("{} bytes recorded", o.len()));
    vec![
        ("cpu", config.cpu.map_or("-".into(), cpu_words)),
        ("memory", bytes(config.memory.size)),
        ("memory guaranteed", bytes(config.memory.guaranteed)),
        ("memory max", bytes(config.memory.max)),
        ("bios", text(&config.bios_type)),
        ("machine", text(&config.machine_type)),
        ("os", text(&config.os_type)),
        ("boot", listed(&config.boot_devices)),
        ("type", text(&config.vm_type)),
        ("time zone", text(&config.time_zone)),
        ("high availability", high_availability(config)),
        ("description", text(&config.description)),
        ("comment", text(&config.comment)),
        ("custom properties", listed(&properties)),
        ("ovf", text(&ovf)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::catalog::{
        AttachmentConfig, CpuTopology, HighAvailability, MemoryConfig, NicConfig,
    };

    fn point(config: Option<VmConfig>) -> Manifest {
        let mut manifest: Manifest = serde_json::from_value(serde_json::json!({
            "format": 1, "vm": "web01", "vm_id": "v1", "point": "20261207T020000Z",
            "kind": "full", "reason": "no backup exists yet", "taken_at": "2026-12-07T02:00:00Z",
            "parent": null, "backup_id": "b1", "from_checkpoint": null, "checkpoint": null,
            "disks": [{"id": "d1", "alias": "web01_os", "interface": "virtio_scsi", "bootable": true,
                       "provisioned_size": 1, "mode": "full", "file": "f", "backing": null,
                       "bytes_transferred": 0, "file_size": 0, "sha256": null}]
        }))
        .expect("manifest");
        manifest.config = config;
        manifest
    }

    fn config() -> VmConfig {
        VmConfig {
            cpu: Some(CpuTopology {
                sockets: 2,
                cores: 2,
                threads: 1,
            }),
            memory: MemoryConfig {
                size: Some(8 << 30),
                guaranteed: Some(4 << 30),
                max: Some(32 << 30),
            },
            bios_type: Some("q35_ovmf".into()),
            os_type: Some("rhel_9x64".into()),
            boot_devices: vec!["hd".into()],
            vm_type: Some("server".into()),
            time_zone: Some("Etc/GMT".into()),
            high_availability: Some(HighAvailability {
                enabled: true,
                priority: Some(50),
            }),
            custom_properties: vec![("sap_agent".into(), "true".into())],
            nics: vec![NicConfig {
                name: "nic1".into(),
                interface: "virtio".into(),
                mac: Some("56:6f:1a:2b:00:01".into()),
                vnic_profile: Some("front".into()),
                network: Some("front".into()),
                linked: true,
                plugged: true,
            }],
            disks: vec![AttachmentConfig {
                disk: "d1".into(),
                interface: "virtio_scsi".into(),
                bootable: true,
                active: true,
                logical_name: Some("/dev/sda".into()),
            }],
            ..VmConfig::default()
        }
    }

    #[test]
    fn a_points_configuration_for_a_person() {
        insta::assert_snapshot!(human(&point(Some(config()))));
        insta::assert_snapshot!("without_configuration", human(&point(None)));
    }

    #[test]
    fn a_configuration_in_one_line() {
        assert_eq!(
            one_line(&config()),
            "4 vCPU (2x2x1), 8.00 GiB, q35_ovmf, rhel_9x64, 1 NIC(s), 1 disk(s)"
        );
    }

    #[test]
    fn the_newest_point_or_the_one_named() {
        let points = [point(None)];
        assert_eq!(
            chosen(&points, None).map(|p| p.point.as_str()),
            Ok("20261207T020000Z")
        );
        let missing = chosen(&points, Some("20250101T000000Z")).unwrap_err();
        assert!(
            missing.contains("the newest are: 20261207T020000Z"),
            "{missing}"
        );
        let json: serde_json::Value = serde_json::from_str(&json(&points[0])).expect("JSON");
        assert!(json["config"].is_null());
    }
}
