//! Fetching the CA from the engine's PKI resource: its URL from the API URL, the one HTTPS
//! request (TLS verified with a kept CA, or not on first contact), and its failures in words.

use std::path::Path;

use reqwest::{StatusCode, Url};

use super::{CaInfo, CertError, TIMEOUT, Trust, inspect};
use crate::run::transport::{self, TransportKind};

/// The largest answer read: a CA certificate is a few KiB.
const MAX_BODY: usize = 1024 * 1024;

/// The PKI resource path and query, after the engine's base URL.
const PKI_PATH: &str = "/ovirt-engine/services/pki-resource";
const PKI_QUERY: &str = "resource=ca-certificate&format=X509-PEM-CA";

/// The PKI resource URL of the engine whose API is at `api_url`: scheme, host and port kept,
/// the trailing `/ovirt-engine/api` (or `/ovirt-engine/api/v4`) replaced; a path before it (a
/// reverse proxy's prefix) is kept; user, query and fragment are dropped.
///
/// # Errors
/// [`CertError::ApiUrl`]: not a URL, not `https`, or no `/ovirt-engine/api` path.
pub fn pki_url(api_url: &str) -> Result<String, CertError> {
    let refuse = |reason: &str| CertError::ApiUrl {
        url: api_url.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(api_url.trim()).map_err(|e| refuse(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(refuse("the scheme must be https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refuse("it names no host"));
    }
    let path = url.path().trim_end_matches('/');
    let prefix = path
        .strip_suffix("/ovirt-engine/api/v4")
        .or_else(|| path.strip_suffix("/ovirt-engine/api"))
        .ok_or_else(|| refuse("its path does not end with /ovirt-engine/api"))?
        .to_owned();
    url.set_path(&format!("{prefix}{PKI_PATH}"));
    url.set_query(Some(PKI_QUERY));
    url.set_fragment(None);
    // Cannot fail on an https URL with a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(url.into())
}
/// Downloads the CA of the engine whose API is at `api_url` and inspects it.
///
/// # Errors
/// A bad API URL or CA file, no connection, a TLS failure, a non-200 answer, or an answer that is
/// not one CA certificate; each names the URL or file.
pub async fn fetch(api_url: &str, trust: Trust) -> Result<CaInfo, CertError> {
    let url = pki_url(api_url)?;
    let client = client(&trust)?;
    let failed = |e: reqwest::Error| request_error(&e, &url, &trust);
    let mut response = client.get(&url).send().await.map_err(failed)?;
    if response.status() != StatusCode::OK {
        return Err(CertError::Status {
            url,
            status: response.status(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return Err(CertError::Answer {
                url,
                reason: "the answer is larger than 1 MiB".to_owned(),
            });
        }
    }
    let text = String::from_utf8(body).map_err(|_| CertError::Answer {
        url: url.clone(),
        reason: "the answer is not text".to_owned(),
    })?;
    inspect(&text).map_err(|e| CertError::Answer {
        url,
        reason: e.to_string(),
    })
}

/// The HTTPS client of one download: TLS verified with the kept CA, or not at all on first
/// contact.
fn client(trust: &Trust) -> Result<reqwest::Client, CertError> {
    let builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .https_only(true)
        .redirect(transport::same_origin_redirects());
    let builder = match trust {
        Trust::Existing(path) => builder.tls_certs_only(trusted(path)?),
        Trust::FirstContact => builder.tls_danger_accept_invalid_certs(true),
    };
    builder
        .build()
        .map_err(|e| CertError::Client(e.to_string()))
}

/// A failed request as a [`CertError`]: a CA the kept one does not vouch for, another TLS
/// failure, or no answer.
fn request_error(error: &reqwest::Error, url: &str, trust: &Trust) -> CertError {
    let ca_file = match trust {
        Trust::Existing(path) => Some(path.as_path()),
        Trust::FirstContact => None,
    };
    let described = describe(error, url, ca_file);
    match (trust, described.kind) {
        (Trust::Existing(ca_file), TransportKind::UnknownCa) => CertError::Untrusted {
            url: url.to_owned(),
            ca_file: ca_file.clone(),
            detail: described.cause,
        },
        (
            _,
            TransportKind::UnknownCa
            | TransportKind::NameMismatch
            | TransportKind::Expired
            | TransportKind::Tls,
        ) => CertError::Tls {
            url: url.to_owned(),
            detail: described.cause,
            help: described.help,
        },
        _ => CertError::Request {
            url: url.to_owned(),
            detail: described.cause,
        },
    }
}

/// The certificates in the CA file of [`Trust::Existing`].
fn trusted(path: &Path) -> Result<Vec<reqwest::Certificate>, CertError> {
    let refuse = |reason: String| CertError::TrustFile {
        path: path.to_owned(),
        reason,
    };
    #[expect(
        clippy::disallowed_methods,
        reason = "CertError::TrustFile names the path already"
    )]
    let pem = std::fs::read(path).map_err(|e| refuse(format!("cannot be read: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| refuse(format!("is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(refuse("holds no certificate".to_owned()));
    }
    Ok(certs)
}

/// A reqwest error's cause in plain words (see [`transport::describe`]).
fn describe(error: &reqwest::Error, url: &str, ca_file: Option<&Path>) -> transport::Described {
    let ca_file = ca_file.map(|p| p.display().to_string());
    transport::describe(
        error,
        transport::Context {
            url,
            ca_file: ca_file.as_deref(),
            timeout: Some(TIMEOUT),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PKI: &str =
        "/ovirt-engine/services/pki-resource?resource=ca-certificate&format=X509-PEM-CA";

    #[test]
    fn pki_url_replaces_the_api_path() {
        for (api, base) in [
            (
                "https://engine.example.com/ovirt-engine/api",
                "https://engine.example.com",
            ),
            (
                "https://engine.example.com/ovirt-engine/api/",
                "https://engine.example.com",
            ),
            (
                "https://engine.example.com/ovirt-engine/api/v4",
                "https://engine.example.com",
            ),
            (
                "https://localhost:8443/ovirt-engine/api",
                "https://localhost:8443",
            ),
            (
                "https://127.0.0.1:8443/ovirt-engine/api",
                "https://127.0.0.1:8443",
            ),
            ("https://[::1]:8443/ovirt-engine/api", "https://[::1]:8443"),
            ("https://e:443/ovirt-engine/api", "https://e"),
            (
                "https://ENGINE.example.com/ovirt-engine/api",
                "https://engine.example.com",
            ),
            (
                "https://proxy.example.com/dc1/ovirt-engine/api",
                "https://proxy.example.com/dc1",
            ),
            (
                "https://admin:secret@e/ovirt-engine/api?x=1#top",
                "https://e",
            ),
            ("  https://e/ovirt-engine/api\n", "https://e"),
        ] {
            assert_eq!(pki_url(api).expect(api), format!("{base}{PKI}"), "{api}");
        }
    }

    #[test]
    fn pki_url_refuses_what_is_not_an_https_api_url() {
        for (api, reason) in [
            ("http://e/ovirt-engine/api", "the scheme must be https"),
            ("https://e", "its path does not end with /ovirt-engine/api"),
            (
                "https://e/ovirt-engine",
                "its path does not end with /ovirt-engine/api",
            ),
            (
                "https://e/api",
                "its path does not end with /ovirt-engine/api",
            ),
            (
                "engine.example.com/ovirt-engine/api",
                "relative URL without a base",
            ),
            ("", "relative URL without a base"),
        ] {
            let error = pki_url(api).expect_err(api);
            assert!(
                matches!(&error, CertError::ApiUrl { url, reason: r } if url == api && r == reason),
                "{api}: {error:?}"
            );
            assert!(
                error
                    .to_string()
                    .contains("expected https://ENGINE/ovirt-engine/api")
            );
        }
    }
}
