//! URL query parameters: parsed once, each taken by name, unknown ones refused with the list.

use std::str::FromStr;

use crate::TransportError;

/// The query parameters of one transport URL, consumed one by one.
#[derive(Debug)]
pub(crate) struct Options {
    scheme: &'static str,
    valid: &'static str,
    pairs: Vec<(String, String)>,
}

impl Options {
    /// Parses `query`, refusing an option given twice or not in `valid` (comma separated).
    pub(crate) fn parse(
        scheme: &'static str,
        query: &str,
        valid: &'static str,
    ) -> Result<Self, TransportError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if !valid.split(", ").any(|v| v == key) {
                return Err(TransportError::UnknownOption {
                    scheme,
                    option: key.into_owned(),
                    valid,
                });
            }
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(TransportError::DuplicateOption(key.into_owned()));
            }
            pairs.push((key.into_owned(), value.into_owned()));
        }
        Ok(Self {
            scheme,
            valid,
            pairs,
        })
    }

    /// The raw value of `name`, if given.
    pub(crate) fn text(&mut self, name: &'static str) -> Option<String> {
        debug_assert!(
            self.valid.split(", ").any(|v| v == name),
            "{name} not declared"
        );
        let i = self.pairs.iter().position(|(k, _)| k == name)?;
        Some(self.pairs.swap_remove(i).1)
    }

    /// A non-empty string, or `default`.
    pub(crate) fn string(
        &mut self,
        name: &'static str,
        default: &str,
    ) -> Result<String, TransportError> {
        match self.text(name) {
            None => Ok(default.to_owned()),
            Some(v) if v.is_empty() => Err(self.invalid(name, v, "must not be empty")),
            Some(v) => Ok(v),
        }
    }

    /// A number in `min..=max`, or `default`.
    pub(crate) fn number<T>(
        &mut self,
        name: &'static str,
        default: T,
        min: T,
        max: T,
    ) -> Result<T, TransportError>
    where
        T: FromStr + PartialOrd + Copy + std::fmt::Display,
    {
        let Some(value) = self.text(name) else {
            return Ok(default);
        };
        match value.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => {
                let reason = format!("expected a whole number from {min} to {max}");
                Err(self.invalid(name, value, &reason))
            }
        }
    }

    /// `true`/`false`, or `default`.
    pub(crate) fn flag(
        &mut self,
        name: &'static str,
        default: bool,
    ) -> Result<bool, TransportError> {
        match self.text(name).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(self.invalid(name, other.to_owned(), "expected true or false")),
        }
    }

    /// A refusal of `name=value`.
    pub(crate) fn invalid(&self, name: &str, value: String, reason: &str) -> TransportError {
        TransportError::InvalidOption {
            scheme: self.scheme,
            option: name.to_owned(),
            value,
            reason: reason.to_owned(),
        }
    }
}
