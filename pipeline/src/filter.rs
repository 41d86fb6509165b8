//! Meter filters: which meter names a source selects (Ceilometer's semantics).
//!
//! A filter is a list of shell globs (`*` matches any run of characters, dots included; `?`
//! one character; `[...]` a class). `!pattern` excludes. Excludes are checked first. A list of
//! only excludes selects everything else; `*` may be combined with excludes but not with plain
//! includes; plain includes may not be mixed with excludes; an empty list is refused.

use glob::Pattern;

/// A validated meter filter.
#[derive(Debug, Clone)]
pub struct MeterFilter {
    includes: Includes,
    excludes: Vec<Pattern>,
}

#[derive(Debug, Clone)]
enum Includes {
    /// `*`, or a list of only excludes.
    Everything,
    Some(Vec<Pattern>),
}

/// Why a meter list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// `meters: []`.
    #[error("meter list is empty (use [\"*\"] to select every meter)")]
    Empty,
    /// `["cpu", "!disk.*"]`.
    #[error(
        "cannot mix included meters with excluded ones (`{include}` and `!{exclude}`): list only \
         excludes, or \"*\" and excludes"
    )]
    MixedIncludeExclude {
        /// The first plain include.
        include: String,
        /// The first exclude, without its `!`.
        exclude: String,
    },
    /// `["*", "cpu"]`.
    #[error("\"*\" already selects every meter; remove `{0}` or remove \"*\"")]
    WildcardWithIncludes(String),
    /// `!` with nothing after it, or an empty string.
    #[error("empty meter pattern")]
    EmptyPattern,
    /// Longer than [`MAX_PATTERN_BYTES`].
    #[error("a meter pattern of {0} bytes is too long (at most {MAX_PATTERN_BYTES})")]
    TooLong(usize),
    /// Unbalanced `[`, for instance.
    #[error("invalid pattern `{pattern}`: {reason}")]
    BadPattern {
        /// The pattern as written (cut when long).
        pattern: String,
        /// What the glob parser said.
        reason: String,
    },
}

/// The longest meter pattern: far more than any meter name needs, and little enough that
/// compiling one costs nothing (a 50 MB glob once took 3.5 GB).
pub const MAX_PATTERN_BYTES: usize = 1024;

impl MeterFilter {
    /// Parses a meter list; the error for an invalid pattern names that pattern's index.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, (Option<usize>, FilterError)> {
        if patterns.is_empty() {
            return Err((None, FilterError::Empty));
        }
        let mut wildcard = false;
        let mut includes = Vec::new();
        let mut excludes = Vec::new();
        for (i, raw) in patterns.iter().enumerate() {
            let raw = raw.as_ref();
            let (negated, text) = match raw.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, raw),
            };
            if text.is_empty() {
                return Err((Some(i), FilterError::EmptyPattern));
            }
            if raw.len() > MAX_PATTERN_BYTES {
                return Err((Some(i), FilterError::TooLong(raw.len())));
            }
            if !negated && text == "*" {
                wildcard = true;
                continue;
            }
            let pattern = Pattern::new(text).map_err(|e| {
                let reason = e.msg.to_owned();
                (
                    Some(i),
                    FilterError::BadPattern {
                        pattern: crate::config::cut(raw).into_owned(),
                        reason,
                    },
                )
            })?;
            if negated {
                excludes.push(pattern)
            } else {
                includes.push(pattern)
            }
        }
        if let (Some(include), Some(exclude)) = (includes.first(), excludes.first()) {
            let err = FilterError::MixedIncludeExclude {
                include: include.as_str().to_owned(),
                exclude: exclude.as_str().to_owned(),
            };
            return Err((None, err));
        }
        if wildcard && let Some(include) = includes.first() {
            return Err((
                None,
                FilterError::WildcardWithIncludes(include.as_str().to_owned()),
            ));
        }
        let includes = if wildcard || includes.is_empty() {
            Includes::Everything
        } else {
            Includes::Some(includes)
        };
        Ok(Self { includes, excludes })
    }

    /// Whether the filter selects `meter`.
    pub fn matches(&self, meter: &str) -> bool {
        if self.excludes.iter().any(|p| p.matches(meter)) {
            return false;
        }
        match &self.includes {
            Includes::Everything => true,
            Includes::Some(patterns) => patterns.iter().any(|p| p.matches(meter)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_pattern_is_refused_before_it_is_compiled_and_never_echoed_whole() {
        let huge = format!("cpu{}", "*".repeat(50 << 20));
        let err = MeterFilter::new(&[huge.as_str()]).expect_err("refused");
        assert_eq!(err, (Some(0), FilterError::TooLong(huge.len())));
        let bad = format!("[{}", "a".repeat(1000));
        let (_, err) = MeterFilter::new(&[bad.as_str()]).expect_err("refused");
        assert!(err.to_string().len() < 200, "{err}");
    }

    fn filter(patterns: &[&str]) -> MeterFilter {
        MeterFilter::new(patterns).expect("valid filter")
    }

    #[test]
    fn selection_table() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["*", "!disk.*"], "disk.read.bytes", false),
            (&["*", "!disk.*"], "cpu", true),
            (&["*", "!disk.*"], "disk", true),
            (&["cpu", "disk.*"], "instance", false),
            (&["cpu", "disk.*"], "cpu", true),
            (&["cpu", "disk.*"], "disk.device.read.bytes", true),
            (&["cpu", "disk.*"], "cpu.util", false),
            (&["!cpu", "!disk.*"], "instance", true),
            (&["!cpu", "!disk.*"], "cpu", false),
            (&["!cpu", "!disk.*"], "disk.device.write.requests", false),
            (&["*"], "anything.at.all", true),
            (&["network.*.bytes"], "network.incoming.bytes", true),
            (&["network.*.bytes"], "network.incoming.packets", false),
            (&["load.?"], "load.1", true),
            (&["load.?"], "load.15", false),
            (&["load.1[05]"], "load.15", true),
            (&["load.1[05]"], "load.1", false),
            (
                &["*", "!disk.device.*.requests"],
                "disk.device.read.requests",
                false,
            ),
            (
                &["*", "!disk.device.*.requests"],
                "disk.device.read.bytes",
                true,
            ),
        ];
        for (patterns, meter, expected) in cases {
            assert_eq!(
                filter(patterns).matches(meter),
                *expected,
                "{patterns:?} on {meter}"
            );
        }
    }

    #[test]
    fn refusal_table() {
        let cases: &[(&[&str], &str)] = &[
            (
                &[],
                "meter list is empty (use [\"*\"] to select every meter)",
            ),
            (
                &["cpu", "!disk.*"],
                "cannot mix included meters with excluded ones (`cpu` and `!disk.*`): list only \
                 excludes, or \"*\" and excludes",
            ),
            (
                &["*", "cpu"],
                "\"*\" already selects every meter; remove `cpu` or remove \"*\"",
            ),
            (&["cpu", "!"], "empty meter pattern"),
            (&[""], "empty meter pattern"),
            (
                &["disk.[abc"],
                "invalid pattern `disk.[abc`: invalid range pattern",
            ),
        ];
        for (patterns, message) in cases {
            let (_, err) = MeterFilter::new(patterns).expect_err("refused");
            assert_eq!(err.to_string(), *message, "{patterns:?}");
        }
    }
}
