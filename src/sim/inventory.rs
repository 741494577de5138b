//! The simulated engine's inventory: clusters, storage domains, hosts, logical networks and
//! their vNIC profiles, VMs with their configuration ([`VmSettings`]), NICs and disks, made from
//! a seed file and kept in `STATE/inventory.json` (written atomically) so a restart keeps it;
//! what an older state lacks is the engine's default. Every disk is a real qcow2 file,
//! `STATE/disks/<disk id>.qcow2`. Seeding networks and NICs is [`super::networks`]'s and
//! [`super::nics`]'s, a VM's configuration [`super::settings`]'s.
//!
//! Ids are UUIDs derived from names (UUID v5), so the same seed gives the same ids.

use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::SimError;
use super::disk::DiskImage;
pub use super::settings::VmSettings;

/// The seed file: what exists when the simulator first starts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Clusters (default: one named `Default`).
    #[serde(default)]
    pub clusters: Vec<SeedNamed>,
    /// Storage domains.
    #[serde(default)]
    pub storage_domains: Vec<SeedNamed>,
    /// Hosts (default: one named `host1`).
    #[serde(default)]
    pub hosts: Vec<SeedNamed>,
    /// Logical networks and their vNIC profiles (`ovirtmgmt` is always there).
    #[serde(default)]
    pub networks: Vec<SeedNetwork>,
    /// VMs and their disks.
    #[serde(default)]
    pub vms: Vec<SeedVm>,
}

/// Something with a name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedNamed {
    /// Its name.
    pub name: String,
}

/// A logical network of the seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedNetwork {
    /// Its name.
    pub name: String,
    /// Its vNIC profiles' names (default: one named as the network, which the engine makes
    /// with a network).
    pub vnic_profiles: Option<Vec<String>>,
}

/// A VM of the seed; what it leaves out is the engine's default for a VM made from the Blank
/// template ([`VmSettings::default`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedVm {
    /// Its name.
    pub name: String,
    /// Its cluster (default: the first).
    pub cluster: Option<String>,
    /// `up` or `down` (default `up`).
    #[serde(default = "up")]
    pub status: String,
    /// Memory in MiB (default 1024).
    #[serde(default = "memory")]
    pub memory_mib: u64,
    /// Its disks (the first bootable unless one says it is).
    #[serde(default)]
    pub disks: Vec<SeedDisk>,
    /// CPU topology (default 1 socket, 1 core, 1 thread).
    pub cpu: Option<SeedCpu>,
    /// `i440fx_sea_bios`, `q35_sea_bios`, `q35_ovmf`, `q35_secure_boot` (default: the
    /// cluster's).
    pub bios_type: Option<String>,
    /// The machine type (`custom_emulated_machine`; default: the cluster's).
    pub machine_type: Option<String>,
    /// The guest OS (default `other`).
    pub os_type: Option<String>,
    /// Boot order: `hd`, `cdrom`, `network` (default `hd`).
    #[serde(default)]
    pub boot_devices: Vec<String>,
    /// `server` (default), `desktop`, `high_performance`.
    pub vm_type: Option<String>,
    /// The guest's time zone (default `Etc/GMT`).
    pub time_zone: Option<String>,
    /// High availability (default off, priority 0).
    pub high_availability: Option<SeedHighAvailability>,
    /// Free text.
    pub description: Option<String>,
    /// Free text.
    pub comment: Option<String>,
    /// Custom properties, name to value, in order.
    #[serde(default)]
    pub custom_properties: serde_json::Map<String, serde_json::Value>,
    /// Guaranteed memory in MiB (default: the memory).
    pub memory_guaranteed_mib: Option<u64>,
    /// Maximum memory in MiB (default: four times the memory).
    pub memory_max_mib: Option<u64>,
    /// Its NICs.
    #[serde(default)]
    pub nics: Vec<SeedNic>,
}

/// A seed VM's CPU topology.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCpu {
    /// Sockets (default 1).
    #[serde(default = "one")]
    pub sockets: u64,
    /// Cores per socket (default 1).
    #[serde(default = "one")]
    pub cores: u64,
    /// Threads per core (default 1).
    #[serde(default = "one")]
    pub threads: u64,
}

fn one() -> u64 {
    1
}

/// A seed VM's high availability.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedHighAvailability {
    /// On (default off).
    #[serde(default)]
    pub enabled: bool,
    /// Priority (default 0).
    #[serde(default)]
    pub priority: u64,
}

/// A NIC of a seed VM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedNic {
    /// Its name (`nic1`).
    pub name: String,
    /// `virtio` (default), `e1000`, `rtl8139`, ...
    #[serde(default = "virtio")]
    pub interface: String,
    /// The name of its vNIC profile (none: on no network).
    pub vnic_profile: Option<String>,
    /// Its MAC (default: the next free one of the engine's pool).
    pub mac: Option<String>,
    /// Link up (default true).
    #[serde(default = "yes")]
    pub linked: bool,
    /// Plugged (default true).
    #[serde(default = "yes")]
    pub plugged: bool,
}

fn virtio() -> String {
    "virtio".into()
}

fn yes() -> bool {
    true
}

fn up() -> String {
    "up".into()
}

fn memory() -> u64 {
    1024
}

/// A disk of the seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedDisk {
    /// Its alias.
    pub name: String,
    /// Virtual size in MiB.
    pub size_mib: u64,
    /// Storage domain (default: the first).
    pub storage_domain: Option<String>,
    /// Interface (default `virtio_scsi`).
    #[serde(default = "virtio_scsi")]
    pub interface: String,
    /// Guest data to write at creation: MiB offset, MiB length, byte pattern.
    #[serde(default)]
    pub data: Vec<SeedWrite>,
    /// `cow` (default) or `raw`, as the engine reports it.
    #[serde(default)]
    pub format: Option<String>,
    /// Thin-provisioned (default: as its format).
    #[serde(default)]
    pub sparse: Option<bool>,
    /// `incremental` (default) or `none`: whether its changed blocks are tracked.
    #[serde(default)]
    pub backup: Option<String>,
    /// Whether the VM boots from it (default: the first disk, unless another says it is).
    pub bootable: Option<bool>,
    /// The guest's name of the disk (`/dev/sda`), which the engine learns from its agent
    /// (default: none).
    pub logical_name: Option<String>,
}

fn virtio_scsi() -> String {
    "virtio_scsi".into()
}

/// A guest write of the seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedWrite {
    /// Offset in MiB.
    pub offset_mib: u64,
    /// Length in MiB.
    pub length_mib: u64,
    /// Byte written.
    pub pattern: u8,
}

/// The inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Clusters.
    pub clusters: Vec<Named>,
    /// Storage domains.
    pub storage_domains: Vec<Named>,
    /// Hosts.
    pub hosts: Vec<Named>,
    /// VMs.
    pub vms: Vec<Vm>,
    /// Disks.
    pub disks: Vec<Disk>,
    /// Checkpoints of VMs' disks (each a bitmap of that name in every disk it covers).
    #[serde(default)]
    pub checkpoints: Vec<Checkpoint>,
    /// Backups, running and ended.
    #[serde(default)]
    pub backups: Vec<Backup>,
    /// Snapshots (the "Active VM" one is implicit).
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
    /// Logical networks (`ovirtmgmt` always), each in every cluster.
    #[serde(default)]
    pub networks: Vec<Named>,
    /// vNIC profiles.
    #[serde(default)]
    pub vnic_profiles: Vec<VnicProfile>,
    /// The third and fourth bytes of this engine's MAC pool, `56:6f:XX:XX:00:00` to
    /// `56:6f:XX:XX:ff:ff` (an engine's setup picks them, so two engines' pools differ).
    #[serde(default)]
    pub mac_pool: [u8; 2],
}

/// A vNIC profile: how a NIC connects to a logical network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VnicProfile {
    /// Id.
    pub id: String,
    /// Name (unique on its network).
    pub name: String,
    /// Its network's id.
    pub network: String,
}

/// A VM's network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    /// Id.
    pub id: String,
    /// Name (unique in its VM).
    pub name: String,
    /// `virtio`, `e1000`, ...
    pub interface: String,
    /// MAC address, lower case.
    pub mac: String,
    /// Its vNIC profile's id (none: on no network).
    pub vnic_profile: Option<String>,
    /// Link up.
    pub linked: bool,
    /// Plugged.
    pub plugged: bool,
}

/// A checkpoint: the point a later incremental backup starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Id (also the name of its bitmap in each disk).
    pub id: String,
    /// The VM's id.
    pub vm: String,
    /// The previous checkpoint of the VM.
    pub parent_id: Option<String>,
    /// Epoch milliseconds.
    pub creation_date: i64,
    /// `created` or `invalid`.
    pub state: String,
    /// The disks it covers.
    pub disks: Vec<String>,
}

/// A VM backup (section 6 of the API page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// Id.
    pub id: String,
    /// The VM's id.
    pub vm: String,
    /// `initializing`, `starting`, `ready`, `finalizing`, `succeeded`, `failed`.
    pub phase: String,
    /// The checkpoint an incremental backup starts from.
    pub from_checkpoint_id: Option<String>,
    /// The checkpoint this backup creates (shown from `ready` on).
    pub to_checkpoint_id: String,
    /// The disks, each `full` or `incremental`.
    pub disks: Vec<BackupDisk>,
    /// The client's description.
    pub description: String,
    /// Epoch milliseconds.
    pub creation_date: i64,
    /// Epoch milliseconds.
    pub modification_date: i64,
    /// The temporary snapshot that holds the backup's point in time.
    pub snapshot: String,
    /// Why it will fail at the next poll (a lost bitmap).
    pub failure: Option<String>,
    /// The engine is still working on its disks (freezing them at the start, thawing them at
    /// the finalize): its phase does not move on until that is done.
    #[serde(default)]
    pub busy: bool,
}

impl Backup {
    /// Whether it still holds its disks (not `succeeded` or `failed`).
    pub fn is_running(&self) -> bool {
        !matches!(self.phase.as_str(), "succeeded" | "failed")
    }

    /// Its disk ids.
    pub fn disk_ids(&self) -> Vec<String> {
        self.disks.iter().map(|d| d.id.clone()).collect()
    }
}

/// A disk of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupDisk {
    /// The disk id.
    pub id: String,
    /// `full` or `incremental`.
    pub mode: String,
}

/// A snapshot of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Id.
    pub id: String,
    /// The VM's id.
    pub vm: String,
    /// The client's description.
    pub description: String,
    /// Epoch milliseconds.
    pub date: i64,
    /// `locked` or `ok`.
    pub status: String,
    /// Whether memory was saved.
    pub persist_memorystate: bool,
    /// The disks it covers.
    pub disks: Vec<String>,
    /// Polls left in `locked` (creation), or until it disappears (deletion).
    pub settle_polls: u32,
    /// Being deleted: gone when `settle_polls` reaches 0.
    pub removing: bool,
    /// Its layers are being merged (a removal): it stays `locked` until they are.
    #[serde(default)]
    pub merging: bool,
}

/// An object with an id and a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
}

/// A VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `up`, `down`, `image_locked`, ...
    pub status: String,
    /// Cluster id.
    pub cluster: String,
    /// Host id while running.
    pub host: Option<String>,
    /// Memory in bytes.
    pub memory: u64,
    /// Attached disks, in order.
    pub attachments: Vec<Attachment>,
    /// Statuses still to pass through, one per poll (`wait_for_launch`, `powering_up`, `up`).
    #[serde(default)]
    pub pending_status: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Its configuration (an older state's: the engine's defaults).
    #[serde(default)]
    pub settings: VmSettings,
    /// Its NICs, in order.
    #[serde(default)]
    pub nics: Vec<Nic>,
}

/// A disk attachment (its id is the disk's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The disk id.
    pub disk: String,
    /// Interface.
    pub interface: String,
    /// Boot disk.
    pub bootable: bool,
    /// Plugged.
    pub active: bool,
    /// The snapshot whose view of the disk this is, when another VM's disk is attached as it
    /// was at one of its snapshots (a backup appliance reading it); `None`: the disk itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The guest's name of the disk (`/dev/sda`), known only from a seed (the engine learns it
    /// from the guest agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_name: Option<String>,
}

impl Attachment {
    /// Whether it attaches the disk itself (the VM owns the disk), not a snapshot's view of
    /// another VM's disk.
    pub fn is_own(&self) -> bool {
        self.snapshot.is_none()
    }
}

impl Vm {
    /// The disks the VM owns, in order (not those of other VMs it sees at a snapshot).
    pub fn own_disks(&self) -> impl Iterator<Item = &str> {
        let own = self.attachments.iter().filter(|a| a.is_own());
        own.map(|a| a.disk.as_str())
    }

    /// Whether the VM owns disk `disk`.
    pub fn owns(&self, disk: &str) -> bool {
        self.own_disks().any(|d| d == disk)
    }
}

/// A disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Id.
    pub id: String,
    /// Alias.
    pub alias: String,
    /// Virtual size in bytes.
    pub provisioned_size: u64,
    /// `cow`.
    pub format: String,
    /// `ok`, `locked`, `illegal`.
    pub status: String,
    /// Storage domain id.
    pub storage_domain: String,
    /// Polls left before a `locked` new disk turns `ok` (each engine phase takes a poll).
    #[serde(default)]
    pub settle_polls: u32,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Thin-provisioned; absent: as its format (`cow` sparse, `raw` not).
    #[serde(default)]
    pub sparse: Option<bool>,
    /// `incremental` or `none` (the engine's default for a new disk); absent (a seed's disk, an
    /// older state): `incremental`.
    #[serde(default)]
    pub backup: Option<String>,
}

impl Disk {
    /// Whether its changed blocks are tracked (`backup: incremental`): only such a disk gets a
    /// checkpoint's bitmap and an incremental backup.
    pub fn tracks_changes(&self) -> bool {
        self.backup.as_deref().is_none_or(|b| b == "incremental")
    }

    /// Whether it is thin-provisioned.
    pub fn is_sparse(&self) -> bool {
        self.sparse.unwrap_or(self.format == "cow")
    }
}

/// A stable id for an object of `kind` named `name`.
pub fn id_of(kind: &str, name: &str) -> String {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("ovsim/{kind}/{name}").as_bytes(),
    )
    .to_string()
}

const MIB: u64 = 1024 * 1024;

/// A seed the engine would refuse, as the reason ovsim does not start.
fn bad_seed(why: String) -> SimError {
    SimError::Start {
        program: "ovsim".into(),
        why,
    }
}

/// The MAC pool bytes of an engine seeded with `seed`: the same seed gives the same pool, two
/// engines seeded differently (production and DR) have different pools, so a VM restored with
/// new MACs never shares one with production.
fn mac_pool_of(seed: &Seed) -> [u8; 2] {
    let hash = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{seed:?}").as_bytes());
    let bytes = hash.as_bytes();
    [bytes[0], bytes[1]]
}

fn named(kind: &str, items: &[SeedNamed], default: &str) -> Vec<Named> {
    let names: Vec<String> = if items.is_empty() {
        vec![default.to_owned()]
    } else {
        items.iter().map(|i| i.name.clone()).collect()
    };
    names
        .into_iter()
        .map(|name| Named {
            id: id_of(kind, &name),
            name,
        })
        .collect()
}

/// The id of the item of `list` named `name`, else of its first item (a seed may leave the
/// name out), else empty.
fn named_or_first(list: &[Named], name: Option<&str>) -> String {
    name.and_then(|n| list.iter().find(|x| x.name == n))
        .or(list.first())
        .map(|x| x.id.clone())
        .unwrap_or_default()
}

impl Inventory {
    /// Builds the inventory of a seed, creating each disk's qcow2 file under `disks_dir` and
    /// writing its seed data as a guest would.
    ///
    /// # Errors
    /// A disk cannot be made.
    pub fn from_seed(seed: &Seed, disks_dir: &Path) -> Result<Self, SimError> {
        fs_err::create_dir_all(disks_dir)
            .map_err(SimError::io(format!("creating {}", disks_dir.display())))?;
        let mut inventory = Inventory {
            clusters: named("cluster", &seed.clusters, "Default"),
            storage_domains: named("storagedomain", &seed.storage_domains, "data"),
            hosts: named("host", &seed.hosts, "host1"),
            mac_pool: mac_pool_of(seed),
            ..Inventory::default()
        };
        inventory.add_seed_networks(&seed.networks);
        for vm in &seed.vms {
            inventory.add_seed_vm(vm, disks_dir)?;
        }
        Ok(inventory)
    }

    /// Adds a seed's VM with its configuration, NICs and disks, each disk made and written.
    fn add_seed_vm(&mut self, seed: &SeedVm, disks_dir: &Path) -> Result<(), SimError> {
        let memory = seed.memory_mib * MIB;
        let settings = super::settings::from_seed(seed, memory).map_err(bad_seed)?;
        let attachments = self.add_seed_disks(seed, disks_dir)?;
        let running = seed.status == "up";
        let id = id_of("vm", &seed.name);
        self.vms.push(Vm {
            id: id.clone(),
            name: seed.name.clone(),
            status: seed.status.clone(),
            cluster: named_or_first(&self.clusters, seed.cluster.as_deref()),
            host: running
                .then(|| self.hosts.first().map(|h| h.id.clone()))
                .flatten(),
            memory,
            attachments,
            pending_status: Vec::new(),
            description: seed.description.clone().unwrap_or_default(),
            settings,
            nics: Vec::new(),
        });
        self.add_seed_nics(&id, seed).map_err(bad_seed)
    }

    /// Makes a seed VM's disks; the one it says is bootable is, else the first.
    fn add_seed_disks(
        &mut self,
        seed: &SeedVm,
        disks_dir: &Path,
    ) -> Result<Vec<Attachment>, SimError> {
        let chosen = seed.disks.iter().any(|d| d.bootable == Some(true));
        let mut attachments = Vec::new();
        for (index, seed_disk) in seed.disks.iter().enumerate() {
            let bootable = seed_disk.bootable.unwrap_or(!chosen && index == 0);
            attachments.push(self.add_seed_disk(&seed.name, seed_disk, bootable, disks_dir)?);
        }
        Ok(attachments)
    }

    /// Adds one disk of the seed's VM `vm_name`: its qcow2 file is made under `disks_dir` and
    /// written as the guest would; the attachment to the VM is returned.
    fn add_seed_disk(
        &mut self,
        vm_name: &str,
        seed_disk: &SeedDisk,
        bootable: bool,
        disks_dir: &Path,
    ) -> Result<Attachment, SimError> {
        let id = id_of("disk", &format!("{vm_name}/{}", seed_disk.name));
        let size = seed_disk.size_mib * MIB;
        let image = DiskImage::create(&disks_dir.join(format!("{id}.qcow2")), size)?;
        for write in &seed_disk.data {
            let (offset, length) = (write.offset_mib * MIB, write.length_mib * MIB);
            image.guest_write(offset, length, write.pattern)?;
        }
        self.disks.push(Disk {
            id: id.clone(),
            alias: seed_disk.name.clone(),
            provisioned_size: size,
            format: seed_disk.format.clone().unwrap_or_else(|| "cow".into()),
            status: "ok".into(),
            storage_domain: named_or_first(
                &self.storage_domains,
                seed_disk.storage_domain.as_deref(),
            ),
            settle_polls: 0,
            description: String::new(),
            sparse: seed_disk.sparse,
            backup: seed_disk.backup.clone(),
        });
        Ok(Attachment {
            disk: id,
            interface: seed_disk.interface.clone(),
            bootable,
            active: true,
            snapshot: None,
            logical_name: seed_disk.logical_name.clone(),
        })
    }

    /// The inventory kept in `state`, else the one a seed (or an empty seed) makes, saved there.
    ///
    /// # Errors
    /// The file is unreadable, or the seed's disks cannot be made.
    pub fn load_or_seed(state: &Path, seed: Option<&Seed>) -> Result<Self, SimError> {
        let path = state.join("inventory.json");
        if let Ok(text) = fs_err::read_to_string(&path) {
            let mut inventory: Inventory =
                serde_json::from_str(&text).map_err(|e| SimError::Start {
                    program: "ovsim".into(),
                    why: format!("{} is not an inventory: {e}", path.display()),
                })?;
            inventory.release_transfer_locks();
            inventory.add_management_network();
            return Ok(inventory);
        }
        let inventory =
            Inventory::from_seed(seed.unwrap_or(&Seed::default()), &state.join("disks"))?;
        inventory.save(state)?;
        Ok(inventory)
    }

    /// After a restart no image transfer survives (their exports died with the old process), so
    /// the disks they locked are unlocked; disks of a running backup stay locked until it is
    /// finalized.
    fn release_transfer_locks(&mut self) {
        let in_backup: Vec<String> = self
            .backups
            .iter()
            .filter(|b| b.is_running())
            .flat_map(|b| b.disks.iter().map(|d| d.id.clone()))
            .collect();
        for disk in &mut self.disks {
            if disk.status == "locked" && disk.settle_polls == 0 && !in_backup.contains(&disk.id) {
                disk.status = "ok".into();
            }
        }
    }

    /// Whether disk `id` tracks its changes ([`Disk::tracks_changes`]).
    pub fn tracks_changes(&self, id: &str) -> bool {
        self.disks.iter().any(|d| d.id == id && d.tracks_changes())
    }

    /// The VM with `id`.
    pub fn vm(&self, id: &str) -> Option<&Vm> {
        self.vms.iter().find(|vm| vm.id == id)
    }

    /// The VM with `id`, to change.
    pub fn vm_mut(&mut self, id: &str) -> Option<&mut Vm> {
        self.vms.iter_mut().find(|vm| vm.id == id)
    }

    /// The VM that owns disk `disk` (a floating disk has none).
    pub fn owner_of(&self, disk: &str) -> Option<&Vm> {
        self.vms.iter().find(|vm| vm.owns(disk))
    }

    /// The disk with `id`, to change.
    pub fn disk_mut(&mut self, id: &str) -> Option<&mut Disk> {
        self.disks.iter_mut().find(|d| d.id == id)
    }

    /// Sets the status of the disks with these ids.
    pub fn set_disk_status(&mut self, ids: &[String], status: &str) {
        for disk in self.disks.iter_mut().filter(|d| ids.contains(&d.id)) {
            disk.status = status.into();
        }
    }

    /// The aliases of those of disks `ids` that are `locked`.
    pub fn locked_disk_aliases(&self, ids: &[String]) -> Vec<String> {
        let locked = self.disks.iter().filter(|d| d.status == "locked");
        locked
            .filter(|d| ids.contains(&d.id))
            .map(|d| d.alias.clone())
            .collect()
    }

    /// Where VM `vm`'s backup `id` is in [`Self::backups`].
    pub fn backup_index(&self, vm: &str, id: &str) -> Option<usize> {
        self.backups.iter().position(|b| b.id == id && b.vm == vm)
    }

    /// The running backup of a VM, if any.
    pub fn running_backup(&self, vm: &str) -> Option<&Backup> {
        self.backups.iter().find(|b| b.vm == vm && b.is_running())
    }

    /// Saves it atomically.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, state: &Path) -> Result<(), SimError> {
        let text = serde_json::to_string_pretty(self).expect("the inventory serializes");
        crate::fsutil::write_atomic(&state.join("inventory.json"), text.as_bytes())
            .map_err(SimError::io("saving the inventory"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_drills_seeds_are_seeds() {
        for text in [
            include_str!("../../examples/ovsim/prod-seed.json"),
            include_str!("../../examples/ovsim/dr-seed.json"),
        ] {
            let seed: Seed = serde_json::from_str(text).expect("a seed");
            assert!(!seed.storage_domains.is_empty());
        }
    }
}
