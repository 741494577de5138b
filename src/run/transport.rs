//! The HTTPS edge every engine request of `ovrun` goes through: which URLs it sends credentials
//! to (https only, never through a redirect to another origin), and what a request that got no
//! answer is said to have met (connection refused, unknown host, the engine's certificate not
//! signed by the configured CA or not for that name, a timeout), found by walking the error's
//! source chain (reqwest -> hyper -> io -> rustls) so that the operator reads the cause and what
//! to do, not "error sending request for url".

use std::error::Error;
use std::time::Duration;

use reqwest::Url;
use reqwest::redirect::{Attempt, Policy};

/// How a request failed to get an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// Nothing listens at the host and port (connection refused).
    Refused,
    /// The host name does not resolve.
    Dns,
    /// The server's certificate is not signed by the trusted CA.
    UnknownCa,
    /// The server's certificate does not hold the name in the URL.
    NameMismatch,
    /// The server's certificate has expired (or is not valid yet).
    Expired,
    /// Another TLS failure.
    Tls,
    /// No answer in time.
    Timeout,
    /// A redirect to another scheme, host or port, refused.
    Redirect,
    /// Anything else (the connection reset, a broken answer).
    Other,
}

/// A failed request in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The kind.
    pub kind: TransportKind,
    /// The cause, e.g. "connection refused: nothing listens at localhost:8443".
    pub cause: String,
    /// What to do about it.
    pub help: String,
}

/// What the describing needs to know besides the error.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The URL requested.
    pub url: &'a str,
    /// The CA file trusted, if one was (`None`: no verification, as on first contact).
    pub ca_file: Option<&'a str>,
    /// The request's time limit, if it had one.
    pub timeout: Option<Duration>,
}

/// A redirect the policy of [`same_origin_redirects`] refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server redirected {from} to {to}, which is not the same https origin (scheme, host and port)"
)]
pub struct RedirectRefused {
    /// The URL redirected from.
    pub from: String,
    /// The URL redirected to.
    pub to: String,
}

/// A redirect policy that follows (at most 10) redirects only within the origin (scheme, host,
/// port) of the first URL, and fails on any other: a request's credentials (a password in the
/// body of a 307, a bearer token) never reach another server.
pub fn same_origin_redirects() -> Policy {
    Policy::custom(|attempt: Attempt<'_>| {
        let Some(first) = attempt.previous().first().cloned() else {
            return attempt.stop();
        };
        let last = attempt.previous().last().cloned().unwrap_or(first.clone());
        if attempt.previous().len() > 10 {
            attempt.error(format!("more than 10 redirects from {first}"))
        } else if same_origin(&first, attempt.url()) {
            attempt.follow()
        } else {
            let to = attempt.url().to_string();
            attempt.error(RedirectRefused {
                from: last.to_string(),
                to,
            })
        }
    })
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Checks that `url` is an https engine API URL (`https://HOST[:PORT][/PREFIX]/ovirt-engine/api`)
/// before anything is sent to it; returns it without a trailing `/`.
///
/// # Errors
/// Why it is not: not a URL, not https, no host, user info in it, or the path does not end
/// with `/ovirt-engine/api`.
pub fn api_url(url: &str) -> Result<String, String> {
    let parsed = Url::parse(url).map_err(|e| format!("is not a URL ({e})"))?;
    if parsed.scheme() != "https" {
        return Err(format!(
            "is not https (it is {}://), and the password is never sent without TLS",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("names no host".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("holds a user or password (the password is read from its file)".to_owned());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("has a query or fragment".to_owned());
    }
    let trimmed = url.trim_end_matches('/');
    if !trimmed.ends_with("/ovirt-engine/api") {
        return Err("does not end with /ovirt-engine/api".to_owned());
    }
    Ok(trimmed.to_owned())
}

/// The cause of `error` in plain words, for a message that names the URL already: what
/// [`describe`] says, without the help line.
pub fn cause(error: &reqwest::Error, url: &str) -> String {
    describe(
        error,
        Context {
            url,
            ca_file: None,
            timeout: None,
        },
    )
    .cause
}

/// Says why `error` got no answer, walking its source chain.
pub fn describe(error: &reqwest::Error, context: Context<'_>) -> Described {
    let links = chain(error);
    if let Some(described) = links.iter().find_map(|link| link_kind(*link, context)) {
        return described;
    }
    if error.is_timeout() {
        return timeout(context);
    }
    // reqwest's own text ("error sending request for url") says nothing: the deepest cause does.
    let deepest = links
        .iter()
        .rev()
        .find(|link| !link.is::<reqwest::Error>())
        .map_or_else(|| error.to_string(), ToString::to_string);
    Described {
        kind: TransportKind::Other,
        cause: deepest,
        help: format!(
            "check that {} is the engine's HTTPS address and that the engine is up",
            origin(context.url)
        ),
    }
}

/// The links of an error's source chain, the error first. An `io::Error`'s `source()` skips
/// the error it wraps, `get_ref()` does not.
fn chain<'a>(error: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    let mut links = Vec::new();
    let mut next = Some(error);
    while let Some(link) = next {
        links.push(link);
        next = match link
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => link.source(),
        };
    }
    links
}

/// What one link of the chain says, if it says something this module knows.
fn link_kind(link: &(dyn Error + 'static), context: Context<'_>) -> Option<Described> {
    if let Some(redirect) = link.downcast_ref::<RedirectRefused>() {
        return Some(Described {
            kind: TransportKind::Redirect,
            cause: format!("{redirect}: refused, no credentials were sent there"),
            help: format!(
                "set the runner config's engine URL to the address the engine answers at itself \
                 (the redirect went to {})",
                redirect.to
            ),
        });
    }
    if let Some(tls) = link.downcast_ref::<rustls::Error>() {
        return Some(tls_kind(tls, context));
    }
    if let Some(io) = link.downcast_ref::<std::io::Error>() {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => return Some(refused(context)),
            std::io::ErrorKind::TimedOut => return Some(timeout(context)),
            _ => {}
        }
    }
    // hyper-util's and reqwest's resolver errors are private types; their texts are stable.
    let text = link.to_string();
    (text == "dns error" || text == "error resolving DNS").then(|| dns(link, context))
}

fn refused(context: Context<'_>) -> Described {
    Described {
        kind: TransportKind::Refused,
        cause: format!(
            "connection refused: nothing listens at {}",
            host_port(context.url)
        ),
        help: "check that the engine is up and that the URL names its HTTPS port (443 unless \
               the engine was set up otherwise)"
            .to_owned(),
    }
}

fn timeout(context: Context<'_>) -> Described {
    Described {
        kind: TransportKind::Timeout,
        cause: match context.timeout {
            Some(limit) => format!(
                "no answer within {} s from {}",
                limit.as_secs_f64(),
                host_port(context.url)
            ),
            None => format!("no answer in time from {}", host_port(context.url)),
        },
        help: "check that the engine is up and not overloaded, and that no firewall drops the \
               connection"
            .to_owned(),
    }
}

fn dns(link: &(dyn Error + 'static), context: Context<'_>) -> Described {
    let detail = chain(link)
        .last()
        .map(ToString::to_string)
        .unwrap_or_default();
    let host = Url::parse(context.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    Described {
        kind: TransportKind::Dns,
        cause: format!("the host name {host:?} does not resolve ({detail})"),
        help: "check the engine's name in the runner config's URL, and this host's DNS \
               (/etc/resolv.conf) or /etc/hosts"
            .to_owned(),
    }
}

fn tls_kind(error: &rustls::Error, context: Context<'_>) -> Described {
    use rustls::CertificateError as C;
    use rustls::Error::InvalidCertificate;
    match error {
        InvalidCertificate(C::UnknownIssuer | C::BadSignature) => unknown_ca(error, context),
        InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => Described {
            kind: TransportKind::NameMismatch,
            cause: format!(
                "TLS: the server's certificate is not for {} ({error})",
                host_port(context.url)
            ),
            help: "use the engine's name as its certificate holds it (the FQDN the engine was \
                   set up with) in the runner config's URL"
                .to_owned(),
        },
        InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => Described {
            kind: TransportKind::Expired,
            cause: format!("TLS: the server's certificate is not valid now ({error})"),
            help: "renew the engine's certificates (engine-setup), and check this host's clock"
                .to_owned(),
        },
        other => Described {
            kind: TransportKind::Tls,
            cause: format!("TLS failed ({other})"),
            help: format!(
                "check that {} is the engine's HTTPS port",
                host_port(context.url)
            ),
        },
    }
}

/// A certificate not signed by the CA trusted: a replaced engine CA, or another server.
fn unknown_ca(error: &rustls::Error, context: Context<'_>) -> Described {
    let ca = context
        .ca_file
        .map_or_else(|| "the trusted CA".to_owned(), |f| format!("the CA in {f}"));
    let fetch = "`ovrun cert fetch` downloads the engine's CA; compare its fingerprint with \
                 `openssl x509 -noout -fingerprint -sha256 -in /etc/pki/ovirt-engine/ca.pem` on \
                 the engine";
    Described {
        kind: TransportKind::UnknownCa,
        cause: format!("TLS: the server's certificate is not signed by {ca} ({error})"),
        help: format!(
            "if this is the engine and its CA was replaced, fetch the new CA ({fetch}); else the \
             URL names another server"
        ),
    }
}

/// `host:port` of a URL (the port the scheme implies if none is written).
fn host_port(url: &str) -> String {
    Url::parse(url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| url.to_owned())
}

/// `scheme://host:port` of a URL.
fn origin(url: &str) -> String {
    Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_url_takes_https_engine_urls_only() {
        for (url, ok) in [
            (
                "https://e.example.com/ovirt-engine/api",
                Some("https://e.example.com/ovirt-engine/api"),
            ),
            (
                "https://e:8443/ovirt-engine/api/",
                Some("https://e:8443/ovirt-engine/api"),
            ),
            (
                "https://p/dc1/ovirt-engine/api",
                Some("https://p/dc1/ovirt-engine/api"),
            ),
            ("http://e/ovirt-engine/api", None),
            ("HTTP://e/ovirt-engine/api", None),
            ("ftp://e/ovirt-engine/api", None),
            ("e/ovirt-engine/api", None),
            ("https://e/api", None),
            ("https://admin:pw@e/ovirt-engine/api", None),
            ("https://e/ovirt-engine/api?x=1", None),
            ("", None),
        ] {
            assert_eq!(api_url(url).ok().as_deref(), ok, "{url}");
        }
        assert!(
            api_url("http://e/ovirt-engine/api")
                .unwrap_err()
                .contains("not https")
        );
    }

    #[test]
    fn origins() {
        let u = |s: &str| Url::parse(s).expect("URL");
        assert!(same_origin(&u("https://e/a"), &u("https://e:443/b")));
        assert!(!same_origin(&u("https://e/a"), &u("http://e/a")));
        assert!(!same_origin(&u("https://e/a"), &u("https://e:8443/a")));
        assert!(!same_origin(&u("https://e/a"), &u("https://f/a")));
        assert_eq!(host_port("https://e/ovirt-engine/api"), "e:443");
        assert_eq!(origin("https://e:8443/x"), "https://e:8443");
    }
}
