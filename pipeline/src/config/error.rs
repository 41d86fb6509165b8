//! Configuration errors that name the file, the line and column, the key and the reason.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file, with the 1-based line and column when the parser knows them.
    File {
        /// The file as given on the command line.
        path: PathBuf,
        /// Line and column of the offending node.
        position: Option<(u64, u64)>,
    },
    /// An environment variable that overrides a setting.
    Env(String),
}

/// One refusal: where, which key, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the bad value is.
    pub origin: Origin,
    /// Dotted key path (`sources[0].interval`), empty for the whole file.
    pub key: String,
    /// What is wrong, in lowercase, listing valid choices where there are some.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File {
                path,
                position: Some((line, column)),
            } => write!(f, "{}:{line}:{column}: ", path.display())?,
            Origin::File {
                path,
                position: None,
            } => write!(f, "{}: ", path.display())?,
            Origin::Env(var) => write!(f, "environment variable {var}: ")?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every refusal found in one configuration, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// The most characters of a configuration value quoted in a message.
const QUOTED: usize = 64;

/// `text` as quoted in an error message: whole when short, else its first characters and
/// how long it was (a 50 MB pattern must not come back whole in a log line).
pub fn cut(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(QUOTED) {
        None => text.into(),
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()).into(),
    }
}
