//! The shape of a namespace file as written: its sections, pollster declarations, meters and
//! targets, with the position of every value for error messages.

use hb_pipeline::config::Seconds;
use hb_sample::SampleType;
use serde::Deserialize;
use serde_saphyr::Spanned as At;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NamespaceFile {
    #[serde(default)]
    pub(super) pollsters: Vec<PollsterDef>,
    #[serde(default)]
    pub(super) http_json: Vec<At<serde_json::Value>>,
    #[serde(default)]
    pub(super) nagios: Vec<At<serde_json::Value>>,
    #[serde(default)]
    pub(super) exec: Vec<At<serde_json::Value>>,
}

impl NamespaceFile {
    /// The plugin sections, by key.
    pub(super) fn sections(&self) -> [(&'static str, &[At<serde_json::Value>]); 3] {
        [
            ("http_json", &self.http_json),
            ("nagios", &self.nagios),
            ("exec", &self.exec),
        ]
    }
}

/// One pollster declaration, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollsterDef {
    /// Pollster name.
    pub name: At<String>,
    /// Implementation name; defaults to `name`.
    #[serde(default)]
    pub builtin: Option<At<String>>,
    /// One line for `--list`.
    #[serde(default)]
    pub description: String,
    /// Run timeout (a duration, see [`Seconds`]).
    #[serde(default)]
    pub timeout: Option<At<Seconds>>,
    /// Meters it produces.
    pub meters: At<Vec<RawMeter>>,
    /// Targets, for pollsters that check them.
    #[serde(default)]
    pub targets: Option<At<Vec<At<TargetDef>>>>,
}

/// A meter declaration, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeter {
    pub(super) name: At<String>,
    #[serde(rename = "type")]
    pub(super) kind: SampleType,
    pub(super) unit: At<String>,
    #[serde(default)]
    pub(super) description: String,
}

/// A target of a checking pollster, as written; each pollster says which fields it needs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDef {
    /// Short name, reported in metadata.
    pub name: String,
    /// For HTTP checks.
    #[serde(default)]
    pub url: Option<String>,
    /// `host:port`, for TCP checks.
    #[serde(default)]
    pub address: Option<String>,
    /// Per-target timeout (a duration, see [`Seconds`]).
    #[serde(default)]
    pub timeout: Option<Seconds>,
}

/// A refusal from a pollster's builder: the field and the reason, positioned by the loader.
#[derive(Debug)]
pub struct DefError {
    /// Line and column, when known.
    pub position: Option<(u64, u64)>,
    /// Key under the pollster (`targets[0].url`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl DefError {
    /// A refusal at `at`.
    pub fn at<T>(at: &At<T>, field: impl Into<String>, message: impl Into<String>) -> Self {
        let loc = at.referenced;
        let position = (loc.line() > 0).then(|| (loc.line(), loc.column()));
        Self {
            position,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl PollsterDef {
    /// Refuses `targets` on a pollster that takes none.
    pub fn no_targets(&self) -> Result<(), DefError> {
        match &self.targets {
            Some(t) => Err(DefError::at(
                t,
                "targets",
                format!("pollster `{}` takes no targets", self.name.value),
            )),
            None => Ok(()),
        }
    }

    /// The targets of a checking pollster; at least one is required.
    pub fn targets(&self) -> Result<&[At<TargetDef>], DefError> {
        match &self.targets {
            Some(t) if !t.value.is_empty() => Ok(&t.value),
            Some(t) => Err(DefError::at(t, "targets", "at least one target is needed")),
            None => Err(DefError::at(
                &self.name,
                "targets",
                "at least one target is needed",
            )),
        }
    }
}
