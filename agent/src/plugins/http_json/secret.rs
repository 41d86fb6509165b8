//! Credentials of a definition: read at load time from an environment variable or a file,
//! kept in a type that never prints them.

use std::fmt;

use serde_json::Value;

use crate::plugins::{Context, FieldError};

/// A credential's text. Its `Debug` prints `<redacted>`; it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The text, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Whether a value may be written in the YAML itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inline {
    /// A literal string is accepted (a non-secret header, a user name).
    Allowed,
    /// Only `{env: VAR}` or `{file: path}` (a password, an `Authorization` header).
    Refused,
}

/// Reads the value of `field`: a literal string (when `inline` allows it), `{env: VAR}`
/// with an optional `default`, or `{file: path}` (relative to the namespace file; one
/// trailing line break is dropped). Errors name the field, the variable or the file, never
/// the value.
pub fn read(
    value: &Value,
    field: &str,
    inline: Inline,
    ctx: &Context<'_>,
) -> Result<Secret, FieldError> {
    let expected = match inline {
        Inline::Allowed => "a string, {env: VAR} (optionally with `default`) or {file: path}",
        Inline::Refused => {
            "{env: VAR} (optionally with `default`) or {file: path}; credentials are not \
             written inline"
        }
    };
    let refuse = |message: String| FieldError::new(field, message);
    let object = match value {
        Value::String(s) if inline == Inline::Allowed => return Ok(Secret(s.clone())),
        Value::Object(o) => o,
        _ => return Err(refuse(format!("expected {expected}"))),
    };
    if let Some(key) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "env" | "file" | "default"))
    {
        return Err(FieldError::new(
            format!("{field}.{key}"),
            format!("unknown key; expected {expected}"),
        ));
    }
    let text = |key: &str| match object.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(FieldError::new(
            format!("{field}.{key}"),
            "expected a string",
        )),
    };
    match (text("env")?, text("file")?, text("default")?) {
        (Some(var), None, default) => match std::env::var(var) {
            Ok(v) => Ok(Secret(v)),
            Err(std::env::VarError::NotPresent) => match default {
                Some(d) => Ok(Secret(d.to_owned())),
                None => Err(refuse(format!(
                    "environment variable `{var}` is not set (and no `default` is given)"
                ))),
            },
            Err(std::env::VarError::NotUnicode(_)) => Err(refuse(format!(
                "environment variable `{var}` is not valid UTF-8"
            ))),
        },
        (None, Some(file), None) => {
            let path = ctx.resolve(file);
            let content = std::fs::read_to_string(&path)
                .map_err(|e| refuse(format!("cannot read `{}`: {e}", path.display())))?;
            let content = content.strip_suffix('\n').unwrap_or(&content);
            let content = content.strip_suffix('\r').unwrap_or(content);
            Ok(Secret(content.to_owned()))
        }
        (None, Some(_), Some(_)) => Err(FieldError::new(
            format!("{field}.default"),
            "`default` goes with `env`, not `file`",
        )),
        _ => Err(refuse(format!(
            "expected exactly one of `env` and `file`: {expected}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx(file: &std::path::Path) -> Context<'_> {
        Context {
            name: "t",
            file,
            timeout: std::time::Duration::from_secs(1),
            shared: crate::plugins::test_shared(),
        }
    }

    #[test]
    fn secrets_come_from_files_env_or_defaults_and_never_print() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ns.yaml");
        std::fs::write(dir.path().join("token"), "s3cret\r\n").expect("write");
        let c = ctx(&file);
        let got = read(&json!({"file": "token"}), "h", Inline::Refused, &c).expect("file");
        assert_eq!(got.expose(), "s3cret");
        assert_eq!(format!("{got:?}"), "<redacted>");
        let var = "HB_TEST_HTTP_JSON_SECRET_SURELY_UNSET";
        let got = read(
            &json!({"env": var, "default": "guest"}),
            "p",
            Inline::Refused,
            &c,
        );
        assert_eq!(got.expect("default").expose(), "guest");
        let got = read(&json!("plain"), "h", Inline::Allowed, &c).expect("literal");
        assert_eq!(got.expose(), "plain");
    }

    #[test]
    fn mistakes_name_the_field_not_the_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ns.yaml");
        let c = ctx(&file);
        let err = |v: Value, inline| read(&v, "basic_auth.password", inline, &c).expect_err("bad");
        let e = err(json!("hunter2"), Inline::Refused);
        assert_eq!(e.field, "basic_auth.password");
        assert!(e.message.contains("not written inline") && !e.message.contains("hunter2"));
        let e = err(
            json!({"env": "HB_TEST_HTTP_JSON_SURELY_UNSET"}),
            Inline::Refused,
        );
        assert!(
            e.message
                .contains("`HB_TEST_HTTP_JSON_SURELY_UNSET` is not set")
        );
        let e = err(json!({"file": "missing"}), Inline::Refused);
        assert!(e.message.starts_with("cannot read `") && e.message.contains("missing"));
        let e = err(json!({"vault": "x"}), Inline::Allowed);
        assert_eq!(e.field, "basic_auth.password.vault");
        let e = err(json!({"env": "A", "file": "b"}), Inline::Allowed);
        assert!(e.message.contains("exactly one of `env` and `file`"));
        let e = err(json!({"env": 3}), Inline::Allowed);
        assert_eq!(e.field, "basic_auth.password.env");
    }
}
