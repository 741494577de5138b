//! A VM's OVF, as the engine gives it in `initialization.configuration.data` when a client asks
//! for `all_content=true` (the SDK's `vm_backup.py` saves it to restore the VM from): an
//! `ovf:Envelope` shaped after the engine's OVF writer (`OvfVmWriter`): the disks' files under
//! `References`, the disks under the `DiskSection`, and under `Content` the VM's name, its id
//! (the operating system section's `ovf:id`, where the engine reads it back), its memory and
//! its disks as hardware items. Minimal: what ovsim knows of a VM (no NICs, no devices beyond
//! the disks).

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use std::io;

use super::devices::BLANK;
use super::inventory::{Attachment, Disk, Inventory, Vm, id_of};
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

/// The VM and what its OVF names besides it.
struct OvfVm<'a> {
    vm: &'a Vm,
    cluster: String,
    disks: Vec<OvfDisk<'a>>,
    version: EngineVersion,
}

/// The OVF of VM `vm`, its disks' sizes from the data plane.
pub(crate) fn vm_ovf(engine: &Engine, inventory: &Inventory, vm: &Vm) -> String {
    let cluster = inventory.clusters.iter().find(|c| c.id == vm.cluster);
    let ovf = OvfVm {
        vm,
        cluster: cluster.map(|c| c.name.clone()).unwrap_or_default(),
        disks: own_disks(engine, inventory, vm),
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
            w.create_element("NetworkSection")
                .write_inner_content(|w| text(w, "Info", "List of networks"))?;
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
    let vm = ovf.vm;
    let now = chrono::Utc::now().format("%Y/%m/%d %H:%M:%S").to_string();
    writer
        .create_element("Content")
        .with_attributes([("ovf:id", "out"), ("xsi:type", "ovf:VirtualSystem_Type")])
        .write_inner_content(|w| {
            text(w, "Name", &vm.name)?;
            text(w, "Description", &vm.description)?;
            text(w, "ExportDate", &now)?;
            text(w, "ClusterName", &ovf.cluster)?;
            text(w, "TemplateId", BLANK)?;
            text(w, "TemplateName", "Blank")?;
            write_os(w, vm)?;
            write_hardware(w, ovf)
        })?;
    Ok(())
}

/// The operating system section, whose `ovf:id` is the VM's id.
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
            text(w, "Description", "other")
        })?;
    Ok(())
}

/// The hardware: one CPU, the VM's memory (MiB), its disks.
fn write_hardware(writer: &mut Xml, ovf: &OvfVm<'_>) -> io::Result<()> {
    let memory_mb = (ovf.vm.memory >> 20).to_string();
    let system_type = format!("ENGINE {}", engine_version(ovf.version));
    writer
        .create_element("Section")
        .with_attribute(("xsi:type", "ovf:VirtualHardwareSection_Type"))
        .write_inner_content(|w| {
            text(w, "Info", &format!("1 CPU, {memory_mb} Memory"))?;
            w.create_element("System")
                .write_inner_content(|w| text(w, "vssd:VirtualSystemType", &system_type))?;
            item(w, &cpu_item())?;
            item(w, &memory_item(&memory_mb))?;
            for disk in &ovf.disks {
                item(w, &disk_item(disk))?;
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

fn cpu_item() -> Vec<(&'static str, String)> {
    vec![
        ("rasd:Caption", "1 virtual cpu".into()),
        ("rasd:Description", "Number of virtual CPU".into()),
        ("rasd:InstanceId", "1".into()),
        ("rasd:ResourceType", "3".into()),
        ("rasd:num_of_sockets", "1".into()),
        ("rasd:cpu_per_socket", "1".into()),
        ("rasd:threads_per_cpu", "1".into()),
        ("rasd:VirtualQuantity", "1".into()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::body::xml_to_json;

    #[test]
    fn a_vms_ovf_is_an_envelope_naming_the_vm_its_memory_and_its_disks() {
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
            settings: crate::sim::settings::VmSettings::default(),
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
        let items = &content["Section"][1]["Item"];
        assert_eq!(items[1]["rasd:VirtualQuantity"], "2048");
        assert_eq!(items[2]["rasd:HostResource"], "d1/i1");
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
