//! The simulator's own CA and the server certificate its `ovirt-imageio` daemon (and later its
//! REST API) presents, made at first start and kept in the state folder, as an engine keeps its
//! PKI. The certificate names `localhost` and `127.0.0.1`, which Python and rustls require.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::SimError;
use crate::fsutil::write_atomic;

/// Where the PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiFiles {
    /// The CA certificate clients trust (the engine serves it at its PKI resource URL).
    pub ca_cert: PathBuf,
    /// The server certificate.
    pub server_cert: PathBuf,
    /// The server's private key (mode 0600).
    pub server_key: PathBuf,
}

impl PkiFiles {
    fn under(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }
}

/// The PKI in `dir`: made there on first use, reused after.
///
/// # Errors
/// Certificates cannot be made or written.
pub fn load_or_create(dir: &Path) -> Result<PkiFiles, SimError> {
    let files = PkiFiles::under(dir);
    if files.ca_cert.exists() && files.server_cert.exists() && files.server_key.exists() {
        return Ok(files);
    }
    fs_err::create_dir_all(dir).map_err(SimError::io(format!("creating {}", dir.display())))?;
    let made = create()?;
    write_atomic(&files.server_key, made.server_key.as_bytes())
        .map_err(SimError::io("writing the server key"))?;
    restrict(&files.server_key)?;
    write_atomic(&files.server_cert, made.server_cert.as_bytes())
        .map_err(SimError::io("writing the server certificate"))?;
    // The CA last: its presence marks the PKI complete.
    write_atomic(&files.ca_cert, made.ca_cert.as_bytes())
        .map_err(SimError::io("writing the CA certificate"))?;
    Ok(files)
}

fn restrict(path: &Path) -> Result<(), SimError> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(SimError::io("restricting the server key"))
}

/// PEM texts of a new CA and a server certificate it signed.
#[derive(Debug, Clone)]
pub struct Made {
    /// CA certificate.
    pub ca_cert: String,
    /// Server certificate.
    pub server_cert: String,
    /// Server private key.
    pub server_key: String,
}

/// Makes a CA and a server certificate for `localhost` / `127.0.0.1`.
///
/// # Errors
/// Key generation or signing fails.
pub fn create() -> Result<Made, SimError> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "ovsim engine CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "ovsim");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &ca)?;
    Ok(Made {
        ca_cert: ca.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
    })
}
