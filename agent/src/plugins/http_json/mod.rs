//! `http_json:` pollsters: GET a JSON API (following `next` links), take a list of entries
//! from each response and make one sample per entry (or per match, for `prefix.{field}`).
//!
//! ```yaml
//! http_json:
//!   - name: rabbitmq.queue.messages          # the meter; `prefix.{field}` makes a family
//!     type: gauge                            # gauge, delta or cumulative
//!     unit: message
//!     url: http://127.0.0.1:15672/api/queues # absolute http(s)
//!     basic_auth: {username: guest, password: {env: HB_RABBITMQ_PASSWORD, default: guest}}
//!     headers: {X-Tenant: ops, X-Auth-Token: {file: token}}   # string, {env: V} or {file: p}
//!     entries: $.items                       # default: the response, which must be a list
//!     next: $.links.next                     # next page URL, absolute or relative to `url`
//!     max_pages: 100                         # default 100
//!     value: $.messages
//!     resource_id: [$.vhost, $.name]         # one path, or several joined with `/`
//!     project_id: $.tenant                   # optional, as is user_id
//!     metadata: {vhost: $.vhost, state: $.state | lowercase}
//!     value_mapping: {running: 1, idle: 0}   # value text → volume
//!     default_value: 0                       # no value / unmapped / not a number
//!     skip_values: [-1, "n/a"]               # numbers: the volume; strings: the raw value
//! ```
//!
//! # Expressions
//!
//! Every path (`entries`, `next`, `value`, `resource_id`, `project_id`, `user_id`,
//! `metadata`) is an [RFC 9535](https://www.rfc-editor.org/rfc/rfc9535) JSONPath in which
//! `$` is the entry (the whole response for `entries` and `next`), optionally followed by
//! operations:
//!
//! ```text
//! expression := jsonpath { "|" operation }
//! operation  := name [ "(" [ argument { "," argument } ] ")" ]
//! argument   := 'text' | "text" | number | true | false | null     (escapes: \\ \' \" \n \t)
//! ```
//!
//! `split(sep)` (string → list), `index(i)` (list element; negative counts from the end),
//! `trim`, `lowercase`, `uppercase`, `replace(from, to)`, `add(n)`, `sub(n)`, `mul(n)`,
//! `div(n)`, `to_number`, `length` (of a list, object or string), `default(value)` (when
//! there is no value or it is null). An operation given a value it does not apply to yields
//! no value, like a path that matches nothing. Nothing is ever evaluated as code.
//! In YAML, quote an expression that contains `*`, `[`, `{`, `,` or starts with a quote
//! (`value: "$.disks[*].used"`): unquoted, `*` starts an alias.
//!
//! Without placeholders, the first node `value` matches is the value. With them, every node
//! it matches is a value, and each `{field}` is read from the object holding that node: with
//! `name: disk.{dev}.used` and `value: $.disks[*].used`, an entry with two disks makes
//! `disk.sda.used` and `disk.sdb.used`.
//!
//! Values: numbers, numeric strings and booleans (1/0) are volumes; `value_mapping` maps a
//! value's text first. No value, or `null`, makes no sample unless `default_value` is set.
//! A definition's other failures per entry (no resource id, a non-numeric value) are counted
//! and logged once per run.
//!
//! Definitions that read the same request (`url`, `headers`, `basic_auth`, `next`,
//! `max_pages`, as written) fetch it once per cycle and measure the same listing
//! (`share.rs`).

mod fetch;
mod grammar;
mod measure;
mod ops;
mod path;
mod secret;
mod share;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use hb_sample::SampleType;
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Map, Value};

use self::fetch::Fetcher;
use self::measure::{Extract, MeterName, Skip, Tally};
use self::path::Expr;
pub use self::share::PageShares;
use super::{Built, Context, FieldError};
use crate::coordination::Share;
use crate::pollster::{Implementation, MeterDef, NetPollster, PollError, PollFuture};

/// Pages read at most when `max_pages` is not set.
pub const DEFAULT_MAX_PAGES: u32 = 100;

/// A definition's own fields, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Def {
    #[serde(rename = "type")]
    kind: SampleType,
    unit: String,
    url: String,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    basic_auth: Option<Value>,
    #[serde(default)]
    entries: Option<String>,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    max_pages: Option<u32>,
    value: String,
    resource_id: OneOrMany,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    value_mapping: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    default_value: Option<f64>,
    #[serde(default)]
    skip_values: Vec<Value>,
}

/// `resource_id`: one path, or a list joined with `/`.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a path or a list of paths")]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// An `http_json` pollster.
struct HttpJson {
    name: String,
    fetcher: Fetcher,
    entries: Option<Expr>,
    extract: Extract,
}

/// Builds an `http_json` pollster from a definition's fields (see the module documentation).
pub fn build(map: Map<String, Value>, ctx: &Context<'_>) -> Result<Built, FieldError> {
    let def: Def = super::fields(map)?;
    let meter = MeterName::parse(ctx.name)?;
    if def.unit.is_empty() {
        return Err(FieldError::new("unit", "must not be empty"));
    }
    let url = fetch::parse_url(&def.url)?;
    let expr = |field: &str, text: &str| {
        Expr::parse(text).map_err(|message| FieldError::new(field, message))
    };
    let entries = def
        .entries
        .as_deref()
        .map(|t| expr("entries", t))
        .transpose()?;
    if entries.as_ref().is_some_and(Expr::has_ops) {
        return Err(FieldError::new(
            "entries",
            "takes a path without operations",
        ));
    }
    let next = def.next.as_deref().map(|t| expr("next", t)).transpose()?;
    let max_pages = def.max_pages.unwrap_or(DEFAULT_MAX_PAGES);
    if max_pages == 0 {
        return Err(FieldError::new("max_pages", "must be at least 1"));
    }
    let resource_id = match &def.resource_id {
        OneOrMany::One(t) => vec![expr("resource_id", t)?],
        OneOrMany::Many(list) if list.is_empty() => {
            return Err(FieldError::new(
                "resource_id",
                "must name at least one path",
            ));
        }
        OneOrMany::Many(list) => list
            .iter()
            .enumerate()
            .map(|(i, t)| expr(&format!("resource_id[{i}]"), t))
            .collect::<Result<_, _>>()?,
    };
    let metadata = def
        .metadata
        .iter()
        .map(|(k, t)| Ok((k.clone(), expr(&format!("metadata.{k}"), t)?)))
        .collect::<Result<_, FieldError>>()?;
    let skip_values = def
        .skip_values
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(Skip::Text(s.clone())),
            Value::Number(n) => Ok(Skip::Number(n.as_f64().unwrap_or(f64::NAN))),
            _ => Err(FieldError::new(
                format!("skip_values[{i}]"),
                "expected a number or a string",
            )),
        })
        .collect::<Result<_, _>>()?;
    let headers = fetch::headers(&def.headers, ctx)?;
    let basic_auth = def
        .basic_auth
        .as_ref()
        .map(|b| fetch::basic_auth(b, ctx))
        .transpose()?;
    let client = fetch::client(headers, ctx.timeout)?;
    // The request as written, secrets by reference, and the directory those references are
    // read from: its identity among the definitions.
    let request = serde_json::json!([
        &def.url,
        &def.headers,
        &def.basic_auth,
        &def.next,
        max_pages,
        ctx.resolve("").to_string_lossy(),
    ]);
    let declared = match &meter {
        MeterName::Fixed(name) => MeterDef::new(name, def.kind, &def.unit),
        family @ MeterName::Family(_) => {
            MeterDef::family(&family.pattern(), def.kind, &def.unit)
                .map_err(|e| FieldError::new("name", format!("not a valid meter pattern: {e}")))?
        }
    };
    let extract = Extract {
        meter,
        kind: def.kind,
        unit: def.unit,
        value: expr("value", &def.value)?,
        resource_id,
        project_id: def
            .project_id
            .as_deref()
            .map(|t| expr("project_id", t))
            .transpose()?,
        user_id: def
            .user_id
            .as_deref()
            .map(|t| expr("user_id", t))
            .transpose()?,
        metadata,
        value_mapping: def.value_mapping,
        default_value: def.default_value,
        skip_values,
    };
    let pollster = HttpJson {
        name: ctx.name.to_owned(),
        fetcher: Fetcher::new(
            url,
            client,
            basic_auth,
            next,
            max_pages,
            ctx.shared.pages.of(request.to_string()),
        ),
        entries,
        extract,
    };
    Ok(Built {
        meters: vec![declared],
        implementation: Implementation::Net(Arc::new(pollster)),
    })
}

impl NetPollster for HttpJson {
    fn poll<'a>(&'a self, _share: &'a Share) -> PollFuture<'a> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut tally = Tally::default();
            self.fetcher
                .pages(&self.name, |url, body| {
                    for entry in self.entries_of(url, body, &mut tally)? {
                        self.extract.entry(entry, &mut out, &mut tally);
                    }
                    Ok(())
                })
                .await?;
            report(&self.name, &tally);
            Ok(out)
        })
    }
}

impl HttpJson {
    /// The entries of one page: the elements of the list `entries` matches (or of the
    /// response), or every node it matches.
    fn entries_of<'b>(
        &self,
        url: &Url,
        body: &'b Value,
        tally: &mut Tally,
    ) -> Result<Vec<&'b Value>, PollError> {
        let Some(path) = &self.entries else {
            return match body {
                Value::Array(items) => Ok(items.iter().collect()),
                _ => Err(PollError::Other(format!(
                    "the response of {url} is not a list; set `entries` to the path of the list"
                ))),
            };
        };
        let nodes = path.nodes(body);
        if nodes.is_empty() {
            tally.pages_without_entries += 1;
        }
        Ok(match nodes.as_slice() {
            [Value::Array(items)] => items.iter().collect(),
            _ => nodes,
        })
    }
}

/// Logs what went wrong with the entries of a run: one line each, not one per entry.
fn report(pollster: &str, t: &Tally) {
    if t.pages_without_entries > 0 {
        tracing::warn!(
            pollster,
            pages = t.pages_without_entries,
            "`entries` matched nothing in a response"
        );
    }
    if let Some((resource, value)) = &t.first_not_numeric {
        tracing::warn!(
            pollster,
            count = t.not_numeric,
            first_resource = %resource,
            first_value = %value,
            "values that are not numbers were dropped; map them with `value_mapping` or convert them with `to_number`"
        );
    }
    tracing::debug!(
        pollster,
        entries = t.entries,
        measurements = t.measurements,
        no_value = t.no_value,
        no_resource_id = t.no_resource,
        no_name_field = t.no_field,
        skipped = t.skipped,
        "http_json run"
    );
}
