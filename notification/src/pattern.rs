//! Event type patterns: shell globs with `!` exclusions, as Ceilometer writes them.

use std::fmt;

/// Why a pattern list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// An empty list.
    #[error("at least one event type pattern is needed")]
    Empty,
    /// `""` or `"!"`.
    #[error("empty event type pattern")]
    EmptyPattern,
    /// Longer than [`MAX_PATTERN_BYTES`].
    #[error("an event type pattern of {0} bytes is too long (at most {MAX_PATTERN_BYTES})")]
    TooLong(usize),
    /// A glob that does not parse (`[` unclosed, ...).
    #[error("invalid event type pattern `{pattern}`: {reason}")]
    Invalid {
        /// The pattern as written (its first 64 characters when long).
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The longest event type pattern (a glob compiles to a token per character).
pub const MAX_PATTERN_BYTES: usize = 1024;

/// Which event types a definition applies to.
///
/// Each pattern is a shell glob (`*` any text, dots included; `?` one character; `[...]` one
/// of a set, `[!...]` one not in it); a pattern starting with `!` excludes. An event type
/// matches when it matches at least one including pattern (a list of only exclusions includes
/// everything) and no excluding one.
#[derive(Clone)]
pub struct EventTypes {
    include: Vec<Glob>,
    exclude: Vec<Glob>,
    text: Vec<String>,
}

#[derive(Clone)]
enum Glob {
    /// No wildcard: plain equality.
    Literal(String),
    /// Anything else.
    Pattern(glob::Pattern),
}

impl Glob {
    fn new(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::EmptyPattern);
        }
        if text.len() > MAX_PATTERN_BYTES {
            return Err(PatternError::TooLong(text.len()));
        }
        if !text.contains(['*', '?', '[', ']']) {
            return Ok(Self::Literal(text.to_owned()));
        }
        glob::Pattern::new(text)
            .map(Self::Pattern)
            .map_err(|e| PatternError::Invalid {
                pattern: text.chars().take(64).collect(),
                reason: e.msg.to_lowercase(),
            })
    }

    fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Literal(l) => l == event_type,
            Self::Pattern(p) => p.matches(event_type),
        }
    }
}

impl EventTypes {
    /// Parses a list of patterns.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        if patterns.is_empty() {
            return Err(PatternError::Empty);
        }
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        for p in patterns {
            let p = p.as_ref();
            match p.strip_prefix('!') {
                Some(rest) => exclude.push(Glob::new(rest)?),
                None => include.push(Glob::new(p)?),
            }
        }
        Ok(Self {
            include,
            exclude,
            text: patterns.iter().map(|p| p.as_ref().to_owned()).collect(),
        })
    }

    /// Whether `event_type` is one of these.
    pub fn matches(&self, event_type: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| g.matches(event_type)))
            && !self.exclude.iter().any(|g| g.matches(event_type))
    }

    /// The patterns as written.
    pub fn patterns(&self) -> &[String] {
        &self.text
    }
}

impl fmt::Debug for EventTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.text).finish()
    }
}

impl fmt::Display for EventTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_pattern_is_refused_and_a_bad_one_is_cut_in_the_message() {
        let huge = "x*".repeat(1 << 20);
        assert_eq!(
            EventTypes::new(&[huge.as_str()]).err(),
            Some(PatternError::TooLong(huge.len()))
        );
        let bad = format!("[{}", "a".repeat(1000));
        let Err(err) = EventTypes::new(&[bad.as_str()]) else {
            panic!("refused");
        };
        assert!(err.to_string().len() < 200, "{err}");
    }
}
