//! URLs that may carry a password, redacted by construction: their `Display` and `Debug` show
//! `***` in place of the password, and only [`SecretUrl::expose`] hands the whole URL to the
//! client library that connects with it.

use std::fmt;

/// A URL that may carry a credential (`amqp://user:PASSWORD@host`, `redis://:PASSWORD@host`).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    full: String,
    shown: String,
}

impl SecretUrl {
    /// Wraps `full`; what is shown of it is computed once, here.
    pub fn new(full: impl Into<String>) -> Self {
        let full = full.into();
        let shown = redact(&full);
        Self { full, shown }
    }

    /// The whole URL, password included: for the client library only, never for a message.
    pub fn expose(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({:?})", self.shown)
    }
}

/// `text` with the password of anything that looks like `scheme://user:password@host` (or a
/// mistyped `scheme:/user:password@host`, or `user:password@host` alone) replaced by `***`:
/// everything between the first `:` after the user name and the last `@` of the authority.
/// Text without an `@` before its path is returned as it is.
pub fn redact(text: &str) -> String {
    let after_scheme = text.find("://").map_or_else(
        // No `scheme://`: a mistyped URL; the authority starts after `scheme:` and slashes.
        || text.find(':').map_or(0, |i| i + 1),
        |i| i + 3,
    );
    let rest = &text[after_scheme..];
    let start = after_scheme + (rest.len() - rest.trim_start_matches('/').len());
    let authority_end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    let Some(at) = text[start..authority_end].rfind('@').map(|i| start + i) else {
        return text.to_owned();
    };
    match text[start..at].find(':') {
        Some(colon) => format!("{}:***{}", &text[..start + colon], &text[at..]),
        // A user name alone, or a mistyped URL where the "user" may be the password.
        None if text.find("://").is_none() => format!("{}***{}", &text[..start], &text[at..]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_replaced_wherever_they_appear() {
        for (text, shown) in [
            (
                "amqp://guest:S3CRETPW@h:5672/%2f",
                "amqp://guest:***@h:5672/%2f",
            ),
            (
                "rabbit:/guest:S3CRETPW@127.0.0.1:5672",
                "rabbit:/guest:***@127.0.0.1:5672",
            ),
            ("rabbit:guest:S3CRETPW@h", "rabbit:guest:***@h"),
            ("redis://:S3CRETPW@h:6379/0", "redis://:***@h:6379/0"),
            ("kafka://user:S3CRETPW@h:9092", "kafka://user:***@h:9092"),
            ("guest:S3CRETPW@h", "guest:***@h"),
            ("redis:/S3CRETPW@h", "redis:/***@h"),
            ("amqp://u:p@ss:w@rd@h/v?x=@", "amqp://u:***@h/v?x=@"),
            ("redis://h:6379/0?prefix=a@b", "redis://h:6379/0?prefix=a@b"),
            ("amqp://user@h", "amqp://user@h"),
            ("memory://", "memory://"),
        ] {
            assert_eq!(redact(text), shown, "{text}");
            assert!(!redact(text).contains("S3CRETPW"));
        }
    }

    #[test]
    fn display_and_debug_never_show_the_password() {
        let url = SecretUrl::new("amqp://guest:S3CRETPW@h:5672/%2f");
        assert_eq!(url.to_string(), "amqp://guest:***@h:5672/%2f");
        assert!(!format!("{url:?}").contains("S3CRETPW"));
        assert!(!format!("{:?}", Some(&url)).contains("S3CRETPW"));
        assert_eq!(url.expose(), "amqp://guest:S3CRETPW@h:5672/%2f");
    }
}
