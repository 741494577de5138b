//! An engine's CA certificate: fetching it, showing what an operator checks (SHA-256
//! fingerprint, subject, expiry), keeping it, and warning before it expires. The library behind
//! `ovrun cert fetch --engine source|target`.
//!
//! The engine serves its CA without login at
//! `{base}/ovirt-engine/services/pki-resource?resource=ca-certificate&format=X509-PEM-CA`, where
//! `{base}` is the API URL without its `/ovirt-engine/api` path. The first download cannot verify
//! TLS (there is no CA yet): [`Trust::FirstContact`] accepts any certificate for that one request
//! and the caller shows the fingerprint, which the operator compares with
//! `openssl x509 -noout -fingerprint -sha256 -in /etc/pki/ovirt-engine/ca.pem` on the engine.
//! Later downloads (renewal) verify TLS with the CA already kept: [`Trust::Existing`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use x509_parser::pem::Pem;

mod pki;

pub use self::pki::{fetch, pki_url};
use crate::fsutil::write_atomic;

/// [`expiry_warning`] warns when the CA expires within this many days.
pub const WARN_WITHIN_DAYS: i64 = 30;

/// How long one download may take, connecting included.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A CA certificate and what an operator checks about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaInfo {
    /// The certificate block alone (`-----BEGIN CERTIFICATE-----` ... `-----END ...-----`), with
    /// `\n` line ends and a final `\n`; text around it is dropped.
    pub pem: String,
    /// SHA-256 of the DER, as `openssl x509 -fingerprint -sha256` shows it: `AA:BB:...`, upper case.
    pub sha256_fingerprint: String,
    /// The subject, e.g. `C=US, O=example.com, CN=engine.example.com.12345`.
    pub subject: String,
    /// The end of validity.
    pub not_after: DateTime<Utc>,
}

/// How [`fetch`] verifies the engine's TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// With a CA file the operator already has (PEM, one or more certificates), as a renewal does.
    Existing(PathBuf),
    /// Not at all, for this one download (trust on first use): the caller must show
    /// [`CaInfo::sha256_fingerprint`] for the operator to compare with the engine's.
    FirstContact,
}

/// Why a CA could not be fetched, read or kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The configured API URL is not one this module can derive the PKI URL from.
    #[error(
        "{url:?} is not an engine API URL: {reason}; expected https://ENGINE/ovirt-engine/api in the runner config"
    )]
    ApiUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA file given for [`Trust::Existing`] cannot be used.
    #[error(
        "the CA file {path} {reason}; point the engine's ca_file at its CA certificate (PEM), or fetch the CA on first contact and compare its fingerprint",
        path = .path.display()
    )]
    TrustFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTPS client could not be made.
    #[error("cannot make an HTTPS client: {0}")]
    Client(String),
    /// The engine's TLS certificate is not signed by the CA the operator has.
    #[error(
        "{url}: the engine's TLS certificate does not verify with the CA in {ca_file} ({detail}); if the engine's CA was replaced, fetch it on first contact and compare its fingerprint with `openssl x509 -noout -fingerprint -sha256 -in /etc/pki/ovirt-engine/ca.pem` on the engine",
        ca_file = .ca_file.display()
    )]
    Untrusted {
        /// The PKI URL.
        url: String,
        /// The CA file that was trusted.
        ca_file: PathBuf,
        /// What TLS reported.
        detail: String,
    },
    /// TLS failed otherwise: the certificate is not for the URL's name or has expired, or the
    /// port does not speak TLS.
    #[error("{url}: {detail}\nhelp: {help}")]
    Tls {
        /// The PKI URL.
        url: String,
        /// What TLS reported.
        detail: String,
        /// What to do.
        help: String,
    },
    /// No answer: DNS, connection, timeout.
    #[error("{url}: {detail}; check that the engine is up and reachable from this host")]
    Request {
        /// The PKI URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The engine answered, but not 200.
    #[error(
        "{url} answered {status}, not 200 with the CA certificate; check the engine URL and that the engine is up"
    )]
    Status {
        /// The PKI URL.
        url: String,
        /// The status.
        status: StatusCode,
    },
    /// The engine answered 200 with something that is not a CA certificate.
    #[error("{url} did not answer a CA certificate: {reason}; check the engine URL")]
    Answer {
        /// The PKI URL.
        url: String,
        /// Why the answer was refused.
        reason: String,
    },
    /// The text holds no PEM block, or a broken one.
    #[error("not a PEM certificate ({0}); expected a -----BEGIN CERTIFICATE----- block")]
    NotPem(String),
    /// A PEM block of another kind, such as a private key.
    #[error("a PEM {label} block, not a certificate; expected a -----BEGIN CERTIFICATE----- block")]
    NotCertificate {
        /// The label after `BEGIN`.
        label: String,
    },
    /// More than one PEM block.
    #[error("{count} PEM blocks; expected exactly one CA certificate")]
    Several {
        /// How many.
        count: usize,
    },
    /// The block does not decode as an X.509 certificate.
    #[error("not a valid X.509 certificate: {0}")]
    BadCertificate(String),
    /// A certificate, but not a CA's (a server certificate, say).
    #[error(
        "the certificate {subject:?} is not a CA (its basicConstraints lack CA:TRUE); expected the engine's CA certificate, not a server's"
    )]
    NotCa {
        /// Its subject.
        subject: String,
    },
    /// The CA could not be written.
    #[error(
        "writing the CA to {path}: {source}; check that the folder is writable",
        path = .path.display()
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Parses a PEM text holding exactly one certificate, which must be a CA's.
///
/// # Errors
/// No PEM block ([`CertError::NotPem`]), a block of another kind
/// ([`CertError::NotCertificate`]), several blocks ([`CertError::Several`]), a block that is not
/// X.509 ([`CertError::BadCertificate`]), a certificate that is not a CA ([`CertError::NotCa`]).
pub fn inspect(pem: &str) -> Result<CaInfo, CertError> {
    let blocks = Pem::iter_from_buffer(pem.as_bytes())
        .collect::<Result<Vec<Pem>, _>>()
        .map_err(|e| CertError::NotPem(e.to_string()))?;
    let block = match blocks.as_slice() {
        [] => return Err(CertError::NotPem("no PEM block".to_owned())),
        [one] => one,
        several => {
            return Err(CertError::Several {
                count: several.len(),
            });
        }
    };
    if block.label != "CERTIFICATE" {
        return Err(CertError::NotCertificate {
            label: block.label.clone(),
        });
    }
    let cert = block
        .parse_x509()
        .map_err(|e| CertError::BadCertificate(e.to_string()))?;
    let subject = cert.subject().to_string();
    if !cert.is_ca() {
        return Err(CertError::NotCa { subject });
    }
    let not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .ok_or_else(|| CertError::BadCertificate("its expiry is out of range".to_owned()))?;
    Ok(CaInfo {
        pem: first_block(pem),
        sha256_fingerprint: fingerprint(&block.contents),
        subject,
        not_after,
    })
}

/// The lines of the first PEM block, as [`Pem::read`] finds them, with `\n` line ends.
fn first_block(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if !inside && line.starts_with("-----BEGIN ") {
            inside = true;
        }
        if inside {
            out.push_str(line.trim_end());
            out.push('\n');
            if line.starts_with("-----END ") {
                break;
            }
        }
    }
    out
}

/// `AA:BB:...`, upper case, as `openssl x509 -fingerprint -sha256` shows it.
fn fingerprint(der: &[u8]) -> String {
    hex::encode_upper(Sha256::digest(der))
        .as_bytes()
        .chunks(2)
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(":")
}

/// Writes the CA's PEM to `path` atomically and durably, making its folder if needed.
///
/// # Errors
/// [`CertError::Write`], naming the path.
pub fn save(info: &CaInfo, path: &Path) -> Result<(), CertError> {
    let failed = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        #[expect(
            clippy::disallowed_methods,
            reason = "CertError::Write names the path already"
        )]
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    write_atomic(path, info.pem.as_bytes()).map_err(failed)
}

/// A warning when the CA expires within [`WARN_WITHIN_DAYS`] days of `now`, or has expired,
/// naming its subject, expiry date and the days left (or past).
pub fn expiry_warning(info: &CaInfo, now: DateTime<Utc>) -> Option<String> {
    let left = info.not_after - now;
    if left > chrono::Duration::days(WARN_WITHIN_DAYS) {
        return None;
    }
    let date = info.not_after.format("%Y-%m-%d %H:%M UTC");
    let days = |n: i64| match n {
        0 => "less than a day".to_owned(),
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    };
    let advice = "renew the CA on the engine, then fetch it again with `ovrun cert fetch`";
    Some(if left <= chrono::Duration::zero() {
        format!(
            "the engine CA {:?} expired on {date}, {} ago: {advice}",
            info.subject,
            days((-left).num_days())
        )
    } else {
        format!(
            "the engine CA {:?} expires on {date}, in {}: {advice}",
            info.subject,
            days(left.num_days())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    fn ca(not_after: Option<(i32, u8, u8)>) -> (String, KeyPair, CertificateParams) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        if let Some((y, m, d)) = not_after {
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        (cert.pem(), key, params)
    }

    #[test]
    fn inspect_reads_a_ca() {
        let (pem, _, _) = ca(Some((2031, 5, 17)));
        let info = inspect(&pem).expect("a CA");
        assert_eq!(info.subject, "CN=test CA");
        assert_eq!(info.not_after.to_rfc3339(), "2031-05-17T00:00:00+00:00");
        assert_eq!(info.sha256_fingerprint.len(), 32 * 3 - 1);
        assert!(
            info.sha256_fingerprint
                .split(':')
                .all(|b| b.len() == 2 && b.chars().all(|c| matches!(c, '0'..='9' | 'A'..='F')))
        );
        assert_eq!(info.pem, pem);
        // Text around the block and CRLF line ends do not change what is kept.
        let wrapped = format!(
            "subject=CN=test CA\r\n{}\r\n\r\n",
            pem.replace('\n', "\r\n")
        );
        assert_eq!(inspect(&wrapped).expect("wrapped"), info);
    }

    #[test]
    fn inspect_refuses_what_is_not_one_ca() {
        let (pem, key, params) = ca(None);
        let issuer = rcgen::Issuer::new(params, key);
        let leaf_key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf");
        assert!(matches!(
            inspect(&leaf.pem()),
            Err(CertError::NotCa { subject }) if subject == "CN=rcgen self signed cert"
        ));
        assert!(matches!(
            inspect(&leaf_key.serialize_pem()),
            Err(CertError::NotCertificate { label }) if label == "PRIVATE KEY"
        ));
        assert!(matches!(
            inspect(&format!("{pem}{}", leaf.pem())),
            Err(CertError::Several { count: 2 })
        ));
        assert!(matches!(
            inspect("<html>Not found</html>"),
            Err(CertError::NotPem(_))
        ));
        assert!(matches!(inspect(""), Err(CertError::NotPem(_))));
        let cut = &pem[..pem.len() / 2];
        assert!(matches!(inspect(cut), Err(CertError::NotPem(_))));
        let not_x509 = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            inspect(not_x509),
            Err(CertError::BadCertificate(_))
        ));
    }

    #[test]
    fn expiry_warning_counts_days() {
        let (pem, _, _) = ca(Some((2031, 5, 17)));
        let info = inspect(&pem).expect("a CA");
        let at = |s: &str| DateTime::parse_from_rfc3339(s).expect("date").to_utc();
        assert_eq!(expiry_warning(&info, at("2031-04-16T23:59:59Z")), None);
        let warned = |s| expiry_warning(&info, at(s)).expect(s);
        assert_eq!(
            warned("2031-04-17T00:00:00Z"),
            "the engine CA \"CN=test CA\" expires on 2031-05-17 00:00 UTC, in 30 days: renew the CA on the engine, then fetch it again with `ovrun cert fetch`"
        );
        assert!(warned("2031-05-15T12:00:00Z").contains(", in 1 day:"));
        assert!(warned("2031-05-16T12:00:00Z").contains(", in less than a day:"));
        assert!(
            warned("2031-05-17T00:00:00Z")
                .contains("expired on 2031-05-17 00:00 UTC, less than a day ago:")
        );
        assert!(
            warned("2031-06-01T00:00:00Z")
                .contains("expired on 2031-05-17 00:00 UTC, 15 days ago:")
        );
    }
}
