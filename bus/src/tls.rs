//! TLS options shared by every client hb opens (the `rabbit`, `redis` and `kafka` buses, the
//! Redis coordination backend, the InfluxDB publisher): parsed and checked once, here, at
//! start-up; each client maps them onto its library.
//!
//! | option | meaning |
//! |---|---|
//! | `tls_ca=PATH` | PEM bundle of CA certificates trusted for the server's certificate |
//! | `tls_cert=PATH`, `tls_key=PATH` | PEM client certificate (chain) and its private key |
//! | `tls_insecure=true` | the server's certificate is not verified (logged as a warning) |
//!
//! Verification is on unless `tls_insecure=true` says otherwise. A file that is missing,
//! unreadable or holds no PEM certificate (or key) is refused with the option and the path.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The option names, for the lists of valid options.
pub const OPTIONS: &str = "tls_ca, tls_cert, tls_key, tls_insecure";

/// A PEM file read at start-up: its path (for messages) and contents.
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The file as read (PEM text).
    pub pem: Vec<u8>,
}

/// Only the path: a private key's contents are never shown.
impl fmt::Debug for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PemFile({})", self.path.display())
    }
}

/// A client certificate (chain) and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `tls_cert`: the certificate chain, leaf first.
    pub cert: PemFile,
    /// `tls_key`: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PemFile,
}

/// Validated TLS options of one client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// `tls_ca`: CA certificates trusted for the server.
    pub ca: Option<PemFile>,
    /// `tls_cert` + `tls_key`.
    pub identity: Option<Identity>,
    /// `tls_insecure=true`: no verification of the server's certificate.
    pub insecure: bool,
}

/// Why a TLS option was refused (lowercase, naming the option and the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option}: {reason}")]
pub struct TlsError {
    /// The option.
    pub option: &'static str,
    /// What is wrong, with the path.
    pub reason: String,
}

fn refuse(option: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError {
        option,
        reason: reason.into(),
    }
}

fn read(option: &'static str, path: &str) -> Result<PemFile, TlsError> {
    if path.is_empty() {
        return Err(refuse(option, "needs the path of a PEM file"));
    }
    let path = Path::new(path);
    let pem = std::fs::read(path).map_err(|e| {
        let e = e.to_string();
        refuse(
            option,
            format!("cannot read {}: {}", path.display(), lower(&e)),
        )
    })?;
    Ok(PemFile {
        path: path.to_owned(),
        pem,
    })
}

fn lower(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_lowercase().chain(chars).collect::<String>()
    })
}

fn certificates(option: &'static str, file: &PemFile) -> Result<usize, TlsError> {
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(&file.pem) {
        cert.map_err(|e| {
            refuse(
                option,
                format!(
                    "{} is not valid PEM: {}",
                    file.path.display(),
                    lower(&e.to_string())
                ),
            )
        })?;
        n += 1;
    }
    if n == 0 {
        return Err(refuse(
            option,
            format!("{} holds no PEM certificate", file.path.display()),
        ));
    }
    Ok(n)
}

impl Tls {
    /// Reads and checks the options as given (`None`: not given).
    pub fn load(
        ca: Option<&str>,
        cert: Option<&str>,
        key: Option<&str>,
        insecure: Option<&str>,
    ) -> Result<Self, TlsError> {
        let insecure = match insecure {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(refuse(
                    "tls_insecure",
                    format!("expected true or false (got `{other}`)"),
                ));
            }
        };
        let ca = match ca {
            None => None,
            Some(_) if insecure => {
                return Err(refuse(
                    "tls_ca",
                    "tls_ca and tls_insecure=true exclude each other (nothing is verified with \
                     tls_insecure)",
                ));
            }
            Some(path) => {
                let file = read("tls_ca", path)?;
                certificates("tls_ca", &file)?;
                Some(file)
            }
        };
        let identity = match (cert, key) {
            (None, None) => None,
            (Some(_), None) => return Err(refuse("tls_cert", "needs tls_key (its private key)")),
            (None, Some(_)) => return Err(refuse("tls_key", "needs tls_cert (its certificate)")),
            (Some(cert), Some(key)) => {
                let cert = read("tls_cert", cert)?;
                certificates("tls_cert", &cert)?;
                let key = read("tls_key", key)?;
                PrivateKeyDer::from_pem_slice(&key.pem).map_err(|e| {
                    refuse(
                        "tls_key",
                        format!(
                            "{} holds no PEM private key: {}",
                            key.path.display(),
                            lower(&e.to_string())
                        ),
                    )
                })?;
                Some(Identity { cert, key })
            }
        };
        Ok(Self {
            ca,
            identity,
            insecure,
        })
    }

    /// True when no option was given.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The options as a URL query (`tls_ca=...&...`), empty when none is set.
    pub fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(ca) = &self.ca {
            q.append_pair("tls_ca", &ca.path.to_string_lossy());
        }
        if let Some(id) = &self.identity {
            q.append_pair("tls_cert", &id.cert.path.to_string_lossy());
            q.append_pair("tls_key", &id.key.path.to_string_lossy());
        }
        if self.insecure {
            q.append_pair("tls_insecure", "true");
        }
        q.finish()
    }

    /// With `tls_insecure=true`, the warning every client logs when it is built: `what` is the
    /// transport or publisher, its URL redacted.
    pub fn warn_if_insecure(&self, what: &dyn fmt::Display) {
        if self.insecure {
            tracing::warn!(
                target: "hb::tls",
                "TLS CERTIFICATE VERIFICATION IS OFF for {what} (tls_insecure=true): any server, \
                 or anyone between, can pose as it; use tls_ca=PATH to trust a private CA instead"
            );
        }
    }

    /// Takes the TLS options out of `pairs`, leaving the others (for a URL whose remaining
    /// query goes to a client library as it is).
    pub fn take(pairs: &mut Vec<(String, String)>) -> Result<Self, TlsError> {
        let mut take = |name: &str| -> Result<Option<String>, TlsError> {
            let mut found = None;
            let mut error = None;
            pairs.retain(|(k, v)| {
                if k != name {
                    return true;
                }
                if found.replace(v.clone()).is_some() {
                    error = Some(name.to_owned());
                }
                false
            });
            match error {
                Some(_) => Err(TlsError {
                    option: option_name(name),
                    reason: "given twice".to_owned(),
                }),
                None => Ok(found),
            }
        };
        let ca = take("tls_ca")?;
        let cert = take("tls_cert")?;
        let key = take("tls_key")?;
        let insecure = take("tls_insecure")?;
        Self::load(
            ca.as_deref(),
            cert.as_deref(),
            key.as_deref(),
            insecure.as_deref(),
        )
    }
}

fn option_name(name: &str) -> &'static str {
    match name {
        "tls_ca" => "tls_ca",
        "tls_cert" => "tls_cert",
        "tls_key" => "tls_key",
        _ => "tls_insecure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ3Jt\n-----END CERTIFICATE-----\n";

    #[test]
    fn files_are_checked_at_start_up() {
        let dir = std::env::temp_dir().join(format!("hb-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = Tls::load(Some(missing.to_str().unwrap()), None, None, None).unwrap_err();
        assert_eq!(e.option, "tls_ca");
        assert!(e.to_string().starts_with("tls_ca: cannot read "), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        assert!(e.to_string().contains("no such file"), "{e}");

        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let e = Tls::load(Some(not_pem.to_str().unwrap()), None, None, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("tls_ca: {} holds no PEM certificate", not_pem.display())
        );

        let cert = dir.join("cert.pem");
        std::fs::write(&cert, CERT).unwrap();
        let e = Tls::load(None, Some(cert.to_str().unwrap()), None, None).unwrap_err();
        assert_eq!(e.to_string(), "tls_cert: needs tls_key (its private key)");
        let e = Tls::load(
            None,
            Some(cert.to_str().unwrap()),
            Some(cert.to_str().unwrap()),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("tls_key: "), "{e}");
        assert!(e.to_string().contains("holds no PEM private key"), "{e}");

        let e = Tls::load(Some(cert.to_str().unwrap()), None, None, Some("true")).unwrap_err();
        assert_eq!(e.option, "tls_ca");
        let e = Tls::load(None, None, None, Some("yes")).unwrap_err();
        assert_eq!(e.option, "tls_insecure");

        let ok = Tls::load(Some(cert.to_str().unwrap()), None, None, None).unwrap();
        assert_eq!(ok.ca.as_ref().unwrap().path, cert);
        assert!(!ok.insecure);
        assert!(Tls::load(None, None, None, None).unwrap().is_default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn take_leaves_the_other_options() {
        let mut pairs = vec![
            ("protocol".to_owned(), "resp3".to_owned()),
            ("tls_insecure".to_owned(), "true".to_owned()),
        ];
        let tls = Tls::take(&mut pairs).unwrap();
        assert!(tls.insecure);
        assert_eq!(pairs, vec![("protocol".to_owned(), "resp3".to_owned())]);
        assert_eq!(tls.query(), "tls_insecure=true");
    }
}
