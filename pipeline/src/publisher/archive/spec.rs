//! Archive URLs: parsing and validating `archive+file://` and `s3://` specs and their options.

use std::fmt;
use std::path::{Path, PathBuf};

use object_store::path::Path as ObjectPath;

use super::super::PublisherUrlError;

const FILE_OPTIONS: &str = "writer, compression";
const S3_OPTIONS: &str = "endpoint, region, allow_http, writer, compression";
const WRITER_MAX_LEN: usize = 64;

/// A validated archive URL (`archive+file://` or `s3://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSpec {
    /// Where the objects go.
    pub location: ArchiveLocation,
    /// Names the objects this process writes (`writer=`).
    pub writer: String,
    /// How objects are compressed (`compression=`).
    pub compression: Compression,
}

/// The store of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveLocation {
    /// `archive+file://DIR`: a local directory (absolute, or resolved against the config's).
    Local(PathBuf),
    /// `s3://BUCKET/PREFIX`.
    S3(S3Location),
}

/// A bucket, a key prefix and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (empty: the bucket's root).
    pub prefix: String,
    /// `endpoint=`: an S3-compatible server, addressed path-style; `None` = AWS.
    pub endpoint: Option<String>,
    /// `region=`; `None` = `AWS_REGION`, `AWS_DEFAULT_REGION` or `us-east-1`.
    pub region: Option<String>,
    /// `allow_http=`.
    pub allow_http: bool,
    /// Credentials given by the program (never by the URL); `None` = from the environment.
    pub credentials: Option<S3Credentials>,
}

/// An access key pair; its `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// How each object is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// gzip (`.jsonl.gz`), the default.
    #[default]
    Gzip,
    /// None (`.jsonl`).
    None,
}

impl Compression {
    /// The option value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::None => "none",
        }
    }

    /// The object name suffix.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Gzip => ".jsonl.gz",
            Self::None => ".jsonl",
        }
    }
}

impl ArchiveSpec {
    /// Validates an archive URL already split by [`PublisherSpec::parse`](super::super::PublisherSpec::parse):
    /// `scheme` is `archive+file` or `s3`, `target` what follows `://` up to `?`, `options` the
    /// query; a relative `archive+file://` directory is resolved against `base`.
    pub fn parse(
        scheme: &str,
        target: &str,
        options: Vec<(String, String)>,
        base: &Path,
    ) -> Result<Self, PublisherUrlError> {
        let (scheme, valid): (&'static str, &'static str) = match scheme {
            "archive+file" => ("archive+file", FILE_OPTIONS),
            "s3" => ("s3", S3_OPTIONS),
            other => {
                return Err(PublisherUrlError::Invalid(format!(
                    "`{other}` is not an archive scheme (available: archive+file, s3)"
                )));
            }
        };
        let mut writer = None;
        let mut compression = Compression::default();
        let mut endpoint = None;
        let mut region = None;
        let mut allow_http = None;
        for (option, value) in options {
            match (option.as_str(), scheme) {
                ("writer", _) => writer = Some(parse_writer(value)?),
                ("compression", _) => compression = parse_compression(value)?,
                ("endpoint", "s3") => endpoint = Some(parse_endpoint(value)?),
                ("region", "s3") => region = Some(parse_region(value)?),
                ("allow_http", "s3") => allow_http = Some(parse_bool("allow_http", value)?),
                _ => {
                    return Err(PublisherUrlError::UnknownOption {
                        scheme,
                        option,
                        valid,
                    });
                }
            }
        }
        let location = if scheme == "s3" {
            let allow_http = allow_http.unwrap_or(false);
            if let Some(e) = &endpoint
                && e.starts_with("http://")
                && !allow_http
            {
                return Err(PublisherUrlError::Invalid(format!(
                    "s3:// endpoint `{e}` is plain http: add allow_http=true to use it"
                )));
            }
            let (bucket, prefix) = parse_bucket_prefix(target)?;
            ArchiveLocation::S3(S3Location {
                bucket,
                prefix,
                endpoint,
                region,
                allow_http,
                credentials: None,
            })
        } else {
            if target.is_empty() {
                let msg = "archive+file:// needs a directory (archive+file:///var/lib/hb/archive, \
                           or a path relative to the configuration file)";
                return Err(PublisherUrlError::Invalid(msg.to_owned()));
            }
            ArchiveLocation::Local(super::super::resolve(base, target))
        };
        Ok(Self {
            location,
            writer: writer.unwrap_or_else(default_writer),
            compression,
        })
    }

    /// The spec as a URL for logs: location and options, never credentials.
    pub fn describe(&self) -> String {
        let mut url = self.base_url();
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let ArchiveLocation::S3(s3) = &self.location {
            if let Some(endpoint) = &s3.endpoint {
                query.append_pair("endpoint", endpoint);
            }
            if let Some(region) = &s3.region {
                query.append_pair("region", region);
            }
            if s3.allow_http {
                query.append_pair("allow_http", "true");
            }
        }
        query.append_pair("writer", &self.writer);
        query.append_pair("compression", self.compression.as_str());
        url.push('?');
        url.push_str(&query.finish());
        url
    }

    /// `archive+file:///DIR` or `s3://BUCKET[/PREFIX]`, without options.
    pub fn base_url(&self) -> String {
        match &self.location {
            ArchiveLocation::Local(dir) => format!("archive+file://{}", dir.display()),
            ArchiveLocation::S3(s3) if s3.prefix.is_empty() => format!("s3://{}", s3.bucket),
            ArchiveLocation::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        }
    }

    /// Uses `credentials` instead of the environment's (`s3://` only; ignored otherwise).
    pub fn with_credentials(mut self, credentials: S3Credentials) -> Self {
        if let ArchiveLocation::S3(s3) = &mut self.location {
            s3.credentials = Some(credentials);
        }
        self
    }
}

/// The default `writer=`: this host's name (characters other than letters, digits, `.`, `_`
/// and `-` replaced by `_`) and the process id, e.g. `host-a-4242`. A pid is unique among the
/// processes running on a host, and object names also carry the process's start time, so two
/// processes never write the same name.
pub fn default_writer() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "hb".to_owned());
    let host: String = host
        .chars()
        .map(|c| if writer_char(c) { c } else { '_' })
        .take(WRITER_MAX_LEN - 11)
        .collect();
    format!("{host}-{}", std::process::id())
}

fn writer_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn parse_writer(value: String) -> Result<String, PublisherUrlError> {
    if value.is_empty()
        || value.len() > WRITER_MAX_LEN
        || !value.chars().all(writer_char)
        || value.starts_with('.')
    {
        return Err(PublisherUrlError::InvalidOption {
            option: "writer",
            value,
            reason: "expected 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`",
        });
    }
    Ok(value)
}

fn parse_compression(value: String) -> Result<Compression, PublisherUrlError> {
    match value.as_str() {
        "gzip" => Ok(Compression::Gzip),
        "none" => Ok(Compression::None),
        _ => Err(PublisherUrlError::InvalidOption {
            option: "compression",
            value,
            reason: "expected gzip or none",
        }),
    }
}

fn parse_bool(option: &'static str, value: String) -> Result<bool, PublisherUrlError> {
    match value.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(PublisherUrlError::InvalidOption {
            option,
            value,
            reason: "expected true or false",
        }),
    }
}

fn parse_endpoint(value: String) -> Result<String, PublisherUrlError> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Err(PublisherUrlError::InvalidOption {
            option: "endpoint",
            value,
            reason: "expected http://HOST[:PORT] or https://HOST[:PORT]",
        });
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        let msg = "s3:// endpoint must not contain credentials: they come from the environment \
                   (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)";
        return Err(PublisherUrlError::Invalid(msg.to_owned()));
    }
    if authority.is_empty() || value.contains(['?', '#', ' ']) {
        return Err(PublisherUrlError::InvalidOption {
            option: "endpoint",
            value,
            reason: "expected http://HOST[:PORT] or https://HOST[:PORT]",
        });
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn parse_region(value: String) -> Result<String, PublisherUrlError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(PublisherUrlError::InvalidOption {
            option: "region",
            value,
            reason: "expected a region name such as us-east-1",
        });
    }
    Ok(value)
}

fn parse_bucket_prefix(target: &str) -> Result<(String, String), PublisherUrlError> {
    let (bucket, prefix) = target.split_once('/').unwrap_or((target, ""));
    // S3's bucket naming rules.
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        let msg = if bucket.is_empty() {
            "s3:// needs a bucket: s3://BUCKET[/PREFIX]".to_owned()
        } else {
            format!(
                "invalid bucket `{bucket}`: expected 3 to 63 lowercase letters, digits, `.` or \
                 `-`, starting and ending with a letter or digit"
            )
        };
        return Err(PublisherUrlError::Invalid(msg));
    }
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() && ObjectPath::parse(prefix).is_err()
        || prefix.split('/').any(|s| s == "." || s == "..")
    {
        return Err(PublisherUrlError::Invalid(format!(
            "invalid s3:// prefix `{prefix}`: expected /-separated names, none empty, `.` or `..`"
        )));
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
