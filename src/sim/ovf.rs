//! A VM's OVF, as the engine gives it in `initialization.configuration.data` when a client asks
//! for `all_content=true` (the SDK's `vm_backup.py` and `download_vm_ovf.py` save it; `ovrun
//! backup` keeps it in a point): an `ovf:Envelope` shaped after the engine's OVF writer
//! (`OvfWriter`, `OvfVmWriter`): the disks' files under `References`, the NICs' networks under
//! the `NetworkSection`, the disks under the `DiskSection`, and under `Content` the VM's
//! configuration in the engine's names and numbers (time zone, boot sequence, VM type, memory
//! policy, high availability, machine and firmware type, custom properties), its id and OS
//! (the operating system section; the engine reads the id back from its `ovf:id`), and its
//! hardware items: the CPU topology, the memory, the disks, the NICs (each on its network and
//! vNIC profile, with its MAC). What ovsim does not model (graphics, USB, RNG, controllers) is
//! left out.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use std::io;

use super::devices::BLANK;
use super::inventory::{Attachment, Disk, Inventory, Nic, Vm, id_of};
use super::settings::{BIOS_TYPES, VM_TYPES, VmSettings};
use super::state::{Engine, EngineVersion};
use super::volumes;

const OVF_URI: &str = "http://schemas.dmtf.org/ovf/envelope/1/";
const RASD_URI: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData";
const VSSD_URI: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData";
const XSI_URI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// One disk of the VM, as the OVF describes it.
struct OvfDisk<'a> {
    disk: &'a Disk,
    attachment: &'a Attachment,
    /// The active volume's id (the engine's image id).
    image: String,
    /// Bytes the disk's volumes take on storage.
    actual_size: u64,
}

impl OvfDisk<'_> {
    /// `DISK/IMAGE`, how the engine names a disk's file.
    fn file(&self) -> String {
        format!("{}/{}", self.disk.id, self.image)
    }
}

/// One NIC of the VM with the names of its vNIC profile and network.
struct OvfNic<'a> {
    nic: &'a Nic,
    profile: Option<&'a str>,
    network: Option<&'a str>,
}

/// The VM and what its OVF names besides it.
struct OvfVm<'a> {
    vm: &'a Vm,
    cluster: String,
    disks: Vec<OvfDisk<'a>>,
    nics: Vec<OvfNic<'a>>,
    version: EngineVersion,
}

/// The OVF of VM `vm`, its disks' sizes from the data plane.
pub(crate) fn vm_ovf(engine: &Engine, inventory: &Inventory, vm: &Vm) -> String {
    let cluster = inventory.clusters.iter().find(|c| c.id == vm.cluster);
    let ovf = OvfVm {
        vm,
        cluster: cluster.map(|c| c.name.clone()).unwrap_or_default(),
        disks: own_disks(engine, inventory, vm),
        nics: nics(inventory, vm),
        version: engine.version,
    };
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_envelope(&mut writer, &ovf).expect("writing to memory does not fail");
    String::from_utf8(writer.into_inner()).expect("XML written from UTF-8 strings")
}

/// The disks VM `vm` owns (not those it sees at another VM's snapshot), in order.
fn own_disks<'a>(engine: &Engine, inventory: &'a Inventory, vm: &'a Vm) -> Vec<OvfDisk<'a>> {
    let own = vm.attachments.iter().filter(|a| a.is_own());
    let found = own.filter_map(|a| Some((a, inventory.disks.iter().find(|d| d.id == a.disk)?)));
    found
        .map(|(attachment, disk)| OvfDisk {
            disk,
            attachment,
            image: (volumes::chain(inventory, &disk.id).pop()).map_or_else(String::new, |v| v.id),
            actual_size: super::resources::actual_size(engine, &disk.id).unwrap_or_default(),
        })
        .collect()
}

/// VM `vm`'s NICs with the names of what they connect to.
fn nics<'a>(inventory: &'a Inventory, vm: &'a Vm) -> Vec<OvfNic<'a>> {
    let named = |nic: &'a Nic| {
        let profile = nic
            .vnic_profile
            .as_deref()
            .and_then(|p| inventory.vnic_profile(p));
        OvfNic {
            nic,
            profile: profile.map(|p| p.name.as_str()),
            network: profile.and_then(|p| inventory.network_name(&p.network)),
        }
    };
    vm.nics.iter().map(named).collect()
}

type Xml = Writer<Vec<u8>>;

/// The engine's version as its OVF states it (`VdcVersion`).
fn engine_version(version: EngineVersion) -> String {
    format!("{}.{}.0.0", version.major, version.minor)
}

fn write_envelope(writer: &mut Xml, ovf: &OvfVm<'_>) -> io::Result<()> {
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let version = engine_version(ovf.version);
    writer
        .create_element("ovf:Envelope")
        .with_attributes([
            ("xmlns:ovf", OVF_URI),
            ("xmlns:rasd", RASD_URI),
            ("xmlns:vssd", VSSD_URI),
            ("xmlns:xsi", XSI_URI),
            ("ovf:version", version.as_str()),
        ])
        .write_inner_content(|w| {
            write_references(w, ovf)?;
            write_networks(w, ovf)?;
            write_disk_section(w, ovf)?;
            write_content(w, ovf)
        })?;
    Ok(())
}

/// `<NAME>TEXT</NAME>`.
fn text(writer: &mut Xml, name: &str, value: &str) -> io::Result<()> {
    writer
        .create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

/// The disks' files.
fn write_references(writer: &mut Xml, ovf: &OvfVm<'_>) -> io::Result<()> {
    writer
        .create_element("References")
        .write_inner_content(|w| {
            for disk in &ovf.disks {
                let (file, size) = (disk.file(), disk.actual_size.to_string());
                w.create_element("File")
                    .with_attributes([
                        ("ovf:href", file.as_str()),
                        ("ovf:id", disk.image.as_str()),
                        ("ovf:size", size.as_str()),
                        ("ovf:description", disk.disk.description.as_str()),
                        ("ovf:disk_storage_type", "IMAGE"),
                        ("ovf:cinder_volume_type", ""),
                    ])
                    .write_empty()?;
            }
            Ok(())
        })?;
    Ok(())
}

/// The networks the NICs are on, each once.
fn write_networks(writer: &mut Xml, ovf: &OvfVm<'_>) -> io::Result<()> {
    let mut networks: Vec<&str> = Vec::new();
    for network in ovf.nics.iter().filter_map(|n| n.network) {
        if !networks.contains(&network) {
            networks.push(network);
        }
    }
    writer
        .create_element("NetworkSection")
        .write_inner_content(|w| {
            text(w, "Info", "List of networks")?;
            for network in &networks {
                let name = ("ovf:name", *network);
                w.create_element("Network")
                    .with_attribute(name)
                    .write_empty()?;
            }
            Ok(())
        })?;
    Ok(())
}

/// Whole GiB, rounded up, as the engine's OVF gives disk sizes.
fn gib(bytes: u64) -> String {
    bytes.div_ceil(1 << 30).to_string()
}

/// The engine's names of a disk's format: the OVF format URI and the volume format and type.
fn formats(disk: &Disk) -> (&'static str, &'static str, &'static str) {
    let kind = if disk.is_sparse() {
        "Sparse"
    } else {
        "Preallocated"
    };
    if disk.format == "raw" {
        (
            "http://www.vmware.com/specifications/vmdk.html#sparse",
            "RAW",
            kind,
        )
    } else {
        (
            "http://www.gnome.org/~markmc/qcow-image-format.html",
            "COW",
            kind,
        )
    }
}

/// The engine's name of a disk interface (`virtio_scsi` -> `VirtIO_SCSI`).
fn interface(api_name: &str) -> &'static str {
    match api_name {
        "virtio" => "VirtIO",
        "virtio_scsi" => "VirtIO_SCSI",
        "sata" => "SATA",
        "spapr_vscsi" => "SPAPR_VSCSI",
        _ => "IDE",
    }
}

/// The disks, with their formats and how they are attached.
fn write_disk_section(writer: &mut Xml, ovf: &OvfVm<'_>) -> io::Result<()> {
    let active = id_of("active-snapshot", &ovf.vm.id);
    writer
        .create_element("Section")
        .with_attribute(("xsi:type", "ovf:DiskSection_Type"))
        .write_inner_content(|w| {
            text(w, "Info", "List of Virtual Disks")?;
            for disk in &ovf.disks {
                write_disk(w, disk, &active)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_disk(writer: &mut Xml, disk: &OvfDisk<'_>, active_snapshot: &str) -> io::Result<()> {
    let (format, volume_format, volume_type) = formats(disk.disk);
    let flag = |value: bool| if value { "true" } else { "false" };
    let (file, size) = (disk.file(), gib(disk.disk.provisioned_size));
    let actual = gib(disk.actual_size);
    writer
        .create_element("Disk")
        .with_attributes([
            ("ovf:diskId", disk.image.as_str()),
            ("ovf:size", size.as_str()),
            ("ovf:actual_size", actual.as_str()),
            ("ovf:vm_snapshot_id", active_snapshot),
            ("ovf:parentRef", ""),
            ("ovf:fileRef", file.as_str()),
            ("ovf:format", format),
            ("ovf:volume-format", volume_format),
            ("ovf:volume-type", volume_type),
            ("ovf:disk-interface", interface(&disk.attachment.interface)),
            ("ovf:read-only", "false"),
            ("ovf:shareable", "false"),
            ("ovf:boot", flag(disk.attachment.bootable)),
            ("ovf:pass-discard", "false"),
            ("ovf:incremental-backup", flag(disk.disk.tracks_changes())),
            ("ovf:disk-alias", disk.disk.alias.as_str()),
            ("ovf:disk-description", disk.disk.description.as_str()),
            ("ovf:wipe-after-delete", "false"),
        ])
        .write_empty()?;
    Ok(())
}

/// The virtual system: the VM's general data, its operating system and its hardware.
fn write_content(writer: &mut Xml, ovf: &OvfVm<'_>) -> io::Result<()> {
    writer
        .create_element("Content")
        .with_attributes([("ovf:id", "out"), ("xsi:type", "ovf:VirtualSystem_Type")])
        .write_inner_content(|w| {
            for (name, value) in general_data(ovf) {
                text(w, name, &value)?;
            }
            write_os(w, ovf.vm)?;
            write_hardware(w, ovf)
        })?;
    Ok(())
}

/// The VM's general data, in the engine's names, numbers and order.
fn general_data(ovf: &OvfVm<'_>) -> Vec<(&'static str, String)> {
    let (vm, settings) = (ovf.vm, &ovf.vm.settings);
    let mib = |bytes: u64| (bytes >> 20).to_string();
    let ha = settings.high_availability;
    let properties: Vec<String> = (settings.custom_properties.iter())
        .map(|p| format!("{}={}", p.name, p.value))
        .collect();
    vec![
        ("Name", vm.name.clone()),
        ("Description", vm.description.clone()),
        ("Comment", settings.comment.clone()),
        (
            "ExportDate",
            chrono::Utc::now().format("%Y/%m/%d %H:%M:%S").to_string(),
        ),
        ("TimeZone", settings.time_zone().to_owned()),
        (
            "default_boot_sequence",
            boot_sequence(&settings.boot_devices).to_string(),
        ),
        ("VmType", position(&VM_TYPES, &settings.vm_type)),
        ("MinAllocatedMem", mib(settings.guaranteed(vm.memory))),
        ("AutoStartup", ha.enabled.to_string()),
        ("Priority", ha.priority.to_string()),
        (
            "CustomEmulatedMachine",
            settings.machine_type.clone().unwrap_or_default(),
        ),
        (
            "BiosType",
            position(&BIOS_TYPES, settings.bios_type(ovf.version)),
        ),
        ("UserDefinedProperties", properties.join(";")),
        ("MaxMemorySizeMb", mib(settings.max(vm.memory))),
        ("ClusterName", ovf.cluster.clone()),
        ("TemplateId", BLANK.to_owned()),
        ("TemplateName", "Blank".to_owned()),
    ]
}

/// Where `value` is in `names`, the engine's number for it in an OVF (0 if it is not there).
fn position(names: &[&str], value: &str) -> String {
    let found = names.iter().position(|n| *n == value);
    found.unwrap_or_default().to_string()
}

/// The engine's number for a boot order (`BootSequence`: C the disk, D the CD-ROM, N the
/// network); 0 (the disk alone) for one it has no number for.
fn boot_sequence(devices: &[String]) -> u32 {
    let letters: String = (devices.iter())
        .map(|d| match d.as_str() {
            "cdrom" => 'D',
            "network" => 'N',
            _ => 'C',
        })
        .collect();
    let codes = [
        "C", "DC", "N", "CDN", "CND", "DCN", "DNC", "NCD", "NDC", "CD", "D", "CN", "DN", "NC", "ND",
    ];
    let found = codes.iter().position(|c| *c == letters);
    found
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or_default()
}

/// The operating system section: the VM's id and its OS type.
fn write_os(writer: &mut Xml, vm: &Vm) -> io::Result<()> {
    writer
        .create_element("Section")
        .with_attributes([
            ("ovf:id", vm.id.as_str()),
            ("ovf:required", "false"),
            ("xsi:type", "ovf:OperatingSystemSection_Type"),
        ])
        .write_inner_content(|w| {
            text(w, "Info", "Guest Operating System")?;
            text(w, "Description", &vm.settings.os_type)
        })?;
    Ok(())
}

/// The hardware: the CPUs, the VM's memory (MiB), its disks and its NICs.
fn write_hardware(writer: &mut Xml, ovf: &OvfVm<'_>) -> io::Result<()> {
    let memory_mb = (ovf.vm.memory >> 20).to_string();
    let system_type = format!("ENGINE {}", engine_version(ovf.version));
    let vcpus = ovf.vm.settings.vcpus();
    writer
        .create_element("Section")
        .with_attribute(("xsi:type", "ovf:VirtualHardwareSection_Type"))
        .write_inner_content(|w| {
            text(w, "Info", &format!("{vcpus} CPU, {memory_mb} Memory"))?;
            w.create_element("System")
                .write_inner_content(|w| text(w, "vssd:VirtualSystemType", &system_type))?;
            item(w, &cpu_item(&ovf.vm.settings))?;
            item(w, &memory_item(&memory_mb))?;
            for disk in &ovf.disks {
                item(w, &disk_item(disk))?;
            }
            for nic in &ovf.nics {
                item(w, &nic_item(nic))?;
            }
            Ok(())
        })?;
    Ok(())
}

/// `<Item>` with each `(name, text)` as a child.
fn item(writer: &mut Xml, fields: &[(&str, String)]) -> io::Result<()> {
    writer.create_element("Item").write_inner_content(|w| {
        for (name, value) in fields {
            text(w, name, value)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn cpu_item(settings: &VmSettings) -> Vec<(&'static str, String)> {
    let (cpu, vcpus) = (settings.cpu, settings.vcpus());
    vec![
        ("rasd:Caption", format!("{vcpus} virtual cpu")),
        ("rasd:Description", "Number of virtual CPU".into()),
        ("rasd:InstanceId", "1".into()),
        ("rasd:ResourceType", "3".into()),
        ("rasd:num_of_sockets", cpu.sockets.to_string()),
        ("rasd:cpu_per_socket", cpu.cores.to_string()),
        ("rasd:threads_per_cpu", cpu.threads.to_string()),
        ("rasd:VirtualQuantity", vcpus.to_string()),
    ]
}

fn memory_item(memory_mb: &str) -> Vec<(&'static str, String)> {
    vec![
        ("rasd:Caption", format!("{memory_mb} MB of memory")),
        ("rasd:Description", "Memory Size".into()),
        ("rasd:InstanceId", "2".into()),
        ("rasd:ResourceType", "4".into()),
        ("rasd:AllocationUnits", "MegaBytes".into()),
        ("rasd:VirtualQuantity", memory_mb.into()),
    ]
}

fn disk_item(disk: &OvfDisk<'_>) -> Vec<(&'static str, String)> {
    let flag = |value: bool| if value { "true" } else { "false" }.to_owned();
    vec![
        ("rasd:Caption", disk.disk.alias.clone()),
        ("rasd:InstanceId", disk.image.clone()),
        ("rasd:ResourceType", "17".into()),
        ("rasd:HostResource", disk.file()),
        ("rasd:Parent", BLANK.into()),
        ("rasd:Template", BLANK.into()),
        ("rasd:StorageId", disk.disk.storage_domain.clone()),
        ("rasd:StoragePoolId", super::resources::data_center_id()),
        ("Type", "disk".into()),
        ("Device", "disk".into()),
        ("DeviceId", disk.disk.id.clone()),
        ("IsPlugged", flag(disk.attachment.active)),
        ("IsReadOnly", "false".into()),
    ]
}

/// The engine's number and speed (Mb/s) of a NIC model (`VmInterfaceType`).
fn nic_model(interface: &str) -> (u32, u32) {
    match interface {
        "rtl8139_virtio" => (0, 1000),
        "rtl8139" => (1, 100),
        "e1000" => (2, 1000),
        "spapr_vlan" => (4, 1000),
        "pci_passthrough" => (5, 1000),
        "e1000e" => (6, 1000),
        _ => (3, 10000),
    }
}

/// A NIC as the engine writes it: its network as `Connection`, its profile as
/// `OtherResourceType`, its model as a number.
fn nic_item(ovf_nic: &OvfNic<'_>) -> Vec<(&'static str, String)> {
    let nic = ovf_nic.nic;
    let (model, speed) = nic_model(&nic.interface);
    let network = ovf_nic.network.unwrap_or_default();
    let caption = format!(
        "Ethernet adapter on {}",
        ovf_nic.network.unwrap_or("[No Network]")
    );
    vec![
        ("rasd:Caption", caption),
        ("rasd:InstanceId", nic.id.clone()),
        ("rasd:ResourceType", "10".into()),
        (
            "rasd:OtherResourceType",
            ovf_nic.profile.unwrap_or_default().into(),
        ),
        ("rasd:ResourceSubType", model.to_string()),
        ("rasd:Connection", network.into()),
        ("rasd:Linked", nic.linked.to_string()),
        ("rasd:Name", nic.name.clone()),
        ("rasd:ElementName", nic.name.clone()),
        ("rasd:MACAddress", nic.mac.clone()),
        ("rasd:speed", speed.to_string()),
        ("Type", "interface".into()),
        ("Device", "bridge".into()),
        ("IsPlugged", nic.plugged.to_string()),
        ("IsReadOnly", "false".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::body::xml_to_json;

    #[test]
    fn a_vms_ovf_is_an_envelope_naming_the_vm_its_configuration_disks_and_nics() {
        let mut settings = VmSettings::default();
        settings.cpu.sockets = 2;
        settings.cpu.cores = 2;
        settings.bios_type = Some("q35_secure_boot".into());
        settings.boot_devices = vec!["network".into(), "hd".into()];
        let nic = Nic {
            id: "n1".into(),
            name: "nic1".into(),
            interface: "e1000".into(),
            mac: "56:6f:00:00:00:01".into(),
            vnic_profile: Some("p1".into()),
            linked: true,
            plugged: false,
        };
        let vm = Vm {
            id: "v1".into(),
            name: "web & db".into(),
            status: "up".into(),
            cluster: "c1".into(),
            host: None,
            memory: 2 << 30,
            attachments: Vec::new(),
            pending_status: Vec::new(),
            description: String::new(),
            settings,
            nics: Vec::new(),
        };
        let disk = Disk {
            id: "d1".into(),
            alias: "web_os".into(),
            provisioned_size: 3 << 30,
            format: "cow".into(),
            status: "ok".into(),
            storage_domain: "sd1".into(),
            settle_polls: 0,
            description: String::new(),
            sparse: None,
            backup: None,
        };
        let attachment = Attachment {
            disk: "d1".into(),
            interface: "virtio_scsi".into(),
            bootable: true,
            active: true,
            snapshot: None,
            logical_name: None,
        };
        let ovf = OvfVm {
            vm: &vm,
            cluster: "Default".into(),
            disks: vec![OvfDisk {
                disk: &disk,
                attachment: &attachment,
                image: "i1".into(),
                actual_size: 1 << 20,
            }],
            nics: vec![OvfNic {
                nic: &nic,
                profile: Some("front-qos"),
                network: Some("front"),
            }],
            version: EngineVersion::default(),
        };
        let mut writer = Writer::new(Vec::new());
        write_envelope(&mut writer, &ovf).unwrap();
        let text = String::from_utf8(writer.into_inner()).unwrap();
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ovf:Envelope"));
        let parsed = xml_to_json(&text).expect("well-formed");
        let content = &parsed["Content"];
        assert_eq!(content["Name"], "web & db");
        assert_eq!(content["Section"][0]["ovf:id"], "v1");
        assert_eq!(
            (&content["BiosType"], &content["default_boot_sequence"]),
            (&"3".into(), &"13".into()),
            "q35_secure_boot and network-then-disk, in the engine's numbers"
        );
        assert_eq!(content["MaxMemorySizeMb"], "8192");
        let items = &content["Section"][1]["Item"];
        assert_eq!(items[0]["rasd:VirtualQuantity"], "4");
        assert_eq!(items[0]["rasd:num_of_sockets"], "2");
        assert_eq!(items[1]["rasd:VirtualQuantity"], "2048");
        assert_eq!(items[2]["rasd:HostResource"], "d1/i1");
        let nic_item = &items[3];
        assert_eq!(
            (
                &nic_item["rasd:Connection"],
                &nic_item["rasd:OtherResourceType"]
            ),
            (&"front".into(), &"front-qos".into())
        );
        assert_eq!(nic_item["rasd:ResourceSubType"], "2");
        assert_eq!(nic_item["IsPlugged"], "false");
        assert_eq!(parsed["NetworkSection"]["Network"]["ovf:name"], "front");
        let listed = &parsed["Section"]["Disk"];
        assert_eq!(
            (
                &listed["ovf:size"],
                &listed["ovf:disk-interface"],
                &listed["ovf:boot"]
            ),
            (&"3".into(), &"VirtIO_SCSI".into(), &"true".into())
        );
    }
}
