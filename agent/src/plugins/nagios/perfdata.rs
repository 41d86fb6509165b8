//! What a Nagios plugin prints, parsed per the plugin guidelines: the status text, the long
//! text and the performance data (`'label'=value[UOM];[warn];[crit];[min];[max]`).
//!
//! ```text
//! DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968
//! / 15272 MB (77%);
//! /boot 68 MB (69%); | /boot=68MB;88;93;0;98
//! /home=69357MB;253404;253409;0;253414
//! ```
//!
//! The first line is `TEXT | PERF`; the following lines are long text until one that holds a
//! `|`, and everything after that `|` is performance data. Labels quoted with `'` may hold
//! spaces and `=`; `''` inside the quotes is a quote. The parser never fails: an item it cannot
//! read is counted with a reason and skipped.

use hb_sample::SampleType;

/// How many reasons for unreadable items a parse keeps (the rest are only counted).
pub const REASONS_KEPT: usize = 3;

/// A plugin's standard output, split into its parts.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Output {
    /// The first line, before any `|`, trimmed.
    pub text: String,
    /// The lines after the first, up to the performance data, trimmed.
    pub long_text: String,
    /// The performance data items that could be read, in order.
    pub perfdata: Vec<Perf>,
    /// How many items could not be read.
    pub bad: usize,
    /// Why, for the first [`REASONS_KEPT`] of them.
    pub reasons: Vec<String>,
}

/// One performance data item.
#[derive(Debug, Clone, PartialEq)]
pub struct Perf {
    /// The label as written, unquoted (`''` read as `'`).
    pub label: String,
    /// The value; `None` for `U` (the plugin could not determine it).
    pub value: Option<f64>,
    /// The unit of measure as written after the value (`s`, `%`, `KB`, `c`...), maybe empty.
    pub uom: String,
    /// The warning threshold (a Nagios range), when given.
    pub warn: Option<String>,
    /// The critical threshold, when given.
    pub crit: Option<String>,
    /// The minimum possible value, when given.
    pub min: Option<String>,
    /// The maximum possible value, when given.
    pub max: Option<String>,
}

/// Splits a plugin's standard output into text, long text and performance data.
pub fn parse(stdout: &str) -> Output {
    let mut output = Output::default();
    let mut lines = stdout.lines();
    let Some(first) = lines.next() else {
        return output;
    };
    let mut perf = String::new();
    match first.split_once('|') {
        Some((text, data)) => {
            output.text = text.trim().to_owned();
            perf.push_str(data);
        }
        None => output.text = first.trim().to_owned(),
    }
    let mut long = Vec::new();
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perf.push('\n');
            perf.push_str(line);
        } else if let Some((text, data)) = line.split_once('|') {
            long.push(text);
            perf.push('\n');
            perf.push_str(data);
            in_perf = true;
        } else {
            long.push(line);
        }
    }
    output.long_text = long.join("\n").trim().to_owned();
    perfdata(&perf, &mut output);
    output
}

/// Reads the performance data items of `data` (separated by whitespace, newlines included)
/// into `output`.
pub fn perfdata(data: &str, output: &mut Output) {
    let mut rest = data;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return;
        }
        let (item, after) = item(rest);
        rest = after;
        match item {
            Ok(perf) => output.perfdata.push(perf),
            Err(reason) => {
                output.bad += 1;
                if output.reasons.len() < REASONS_KEPT {
                    output.reasons.push(reason);
                }
            }
        }
    }
}

/// Reads one item at the start of `s` (which starts with a non-space); returns it and the rest.
fn item(s: &str) -> (Result<Perf, String>, &str) {
    let (label, after) = if let Some(quoted) = s.strip_prefix('\'') {
        match quoted_label(quoted) {
            Some(found) => found,
            None => {
                let end = s.find(char::is_whitespace).unwrap_or(s.len());
                let why = format!("unterminated quote in `{}`", clip(&s[..end]));
                return (Err(why), &s[end..]);
            }
        }
    } else {
        let end = s
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(s.len());
        (s[..end].to_owned(), &s[end..])
    };
    let end = after.find(char::is_whitespace).unwrap_or(after.len());
    let (field, rest) = (&after[..end], &after[end..]);
    let token = || clip(&s[..s.len() - rest.len()]);
    let Some(data) = field.strip_prefix('=') else {
        return (Err(format!("`{}` is not label=value", token())), rest);
    };
    if label.is_empty() {
        return (Err(format!("`{}` has an empty label", token())), rest);
    }
    let mut fields = data.split(';');
    let first = fields.next().unwrap_or_default();
    let (value, uom) = match value(first) {
        Ok(v) => v,
        Err(why) => return (Err(format!("`{}`: {why}", token())), rest),
    };
    let mut threshold = || fields.next().filter(|f| !f.is_empty()).map(str::to_owned);
    let perf = Perf {
        label,
        value,
        uom: uom.to_owned(),
        warn: threshold(),
        crit: threshold(),
        min: threshold(),
        max: threshold(),
    };
    (Ok(perf), rest)
}

/// The label inside quotes (`s` starts after the opening quote) and what follows the closing
/// quote; `None` when the quote is not closed.
fn quoted_label(s: &str) -> Option<(String, &str)> {
    let mut label = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\'' {
            label.push(c);
        } else if s[i + 1..].starts_with('\'') {
            label.push('\'');
            chars.next();
        } else {
            return Some((label, &s[i + 1..]));
        }
    }
    None
}

/// The value and unit of measure of `field` (`12.5ms`, `U`, `-3`, `1e3B`).
fn value(field: &str) -> Result<(Option<f64>, &str), String> {
    if field == "U" {
        return Ok((None, ""));
    }
    let bytes = field.as_bytes();
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut end = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let whole = digits(end);
    end += whole;
    let mut fraction = 0;
    if bytes.get(end) == Some(&b'.') {
        fraction = digits(end + 1);
        end += 1 + fraction;
    }
    if whole + fraction == 0 {
        return Err("the value is not a number".to_owned());
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
        let exponent = digits(end + 1 + sign);
        if exponent > 0 {
            end += 1 + sign + exponent;
        }
    }
    let (number, uom) = field.split_at(end);
    if uom.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '.' | ',' | '+' | '-')) {
        return Err("the value is not a number".to_owned());
    }
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok((Some(v), uom)),
        _ => Err("the value is out of range".to_owned()),
    }
}

/// The sample type and unit of a unit of measure: `c` (a continuous counter) is cumulative
/// with unit `count`; no unit of measure is a dimensionless gauge (unit `1`); anything else
/// (`s`, `ms`, `us`, `%`, `B`, `KB`, `MB`, `GB`, `TB`, or a unit the guidelines do not list)
/// is a gauge in that unit, as written.
pub fn kind_and_unit(uom: &str) -> (SampleType, &str) {
    match uom {
        "c" => (SampleType::Cumulative, "count"),
        "" => (SampleType::Gauge, "1"),
        other => (SampleType::Gauge, other),
    }
}

/// `s`, shortened for a message.
fn clip(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests;
