//! What `--list` and `--once` print: aligned tables, or JSON lines.

use std::io::{self, Write};

use hb_sample::Sample;

use crate::model::LoadedPollster;

/// Writes `rows` under `headers`, every column but the last padded to its widest cell.
pub fn table(out: &mut impl Write, headers: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `--list`: one row per meter.
pub fn pollsters(
    out: &mut impl Write,
    pollsters: &[std::sync::Arc<LoadedPollster>],
) -> io::Result<()> {
    let rows: Vec<Vec<String>> = pollsters
        .iter()
        .flat_map(|p| {
            p.meters.iter().map(|m| {
                let description = if m.description.is_empty() {
                    &p.description
                } else {
                    &m.description
                };
                vec![
                    p.namespace.clone(),
                    p.name.clone(),
                    p.kind.to_string(),
                    m.name.clone(),
                    m.kind.to_string(),
                    m.unit.clone(),
                    p.source.display().to_string(),
                    description.clone(),
                ]
            })
        })
        .collect();
    table(
        out,
        &[
            "NAMESPACE",
            "POLLSTER",
            "KIND",
            "METER",
            "TYPE",
            "UNIT",
            "SOURCE",
            "DESCRIPTION",
        ],
        &rows,
    )
}

/// `--list`: the plugin definitions that were skipped, and why.
pub fn skipped(out: &mut impl Write, skipped: &[hb_pipeline::ConfigError]) -> io::Result<()> {
    for e in skipped {
        writeln!(out, "hb-polling: skipped: {e}")?;
    }
    Ok(())
}

/// `--once`: samples as a table.
pub fn samples_table(out: &mut impl Write, samples: &[Sample]) -> io::Result<()> {
    let rows: Vec<Vec<String>> = samples
        .iter()
        .map(|s| {
            let mut metadata = s.resource_metadata.clone();
            metadata.remove("host");
            vec![
                s.name.clone(),
                s.kind.to_string(),
                s.unit.clone(),
                s.volume().to_string(),
                s.resource_id.clone(),
                serde_json::Value::Object(metadata).to_string(),
            ]
        })
        .collect();
    table(
        out,
        &["NAME", "TYPE", "UNIT", "VOLUME", "RESOURCE", "METADATA"],
        &rows,
    )
}

/// `--once --format json`: one sample per line, as the file publisher writes them.
pub fn samples_json(out: &mut impl Write, samples: &[Sample]) -> io::Result<()> {
    for s in samples {
        serde_json::to_writer(&mut *out, s)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align_and_the_last_is_not_padded() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["cpu".into(), "ns".into(), "x".into()],
            vec!["memory.total".into(), "B".into(), "y".into()],
        ];
        super::table(&mut out, &["NAME", "UNIT", "NOTE"], &rows).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "NAME          UNIT  NOTE\ncpu           ns    x\nmemory.total  B     y\n"
        );
    }
}
