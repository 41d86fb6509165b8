//! The plugin output parser: a table of edge cases, and property tests over random inputs
//! (arbitrary text, well-formed items that must come back as written, and those mutated).

use proptest::prelude::*;

use super::*;

/// An item as `label=value|uom|warn|crit|min|max` (`U` for an undetermined value).
fn show(p: &Perf) -> String {
    let value = p.value.map_or("U".to_owned(), |v| v.to_string());
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    format!(
        "{}={value}|{}|{}|{}|{}|{}",
        p.label,
        p.uom,
        opt(&p.warn),
        opt(&p.crit),
        opt(&p.min),
        opt(&p.max)
    )
}

#[test]
fn table_of_outputs() {
    // (stdout, text, long text, items, unreadable items)
    let cases: &[(&str, &str, &str, &[&str], usize)] = &[
        ("", "", "", &[], 0),
        ("OK", "OK", "", &[], 0),
        ("  OK - fine  | ", "OK - fine", "", &[], 0),
        (
            "LOAD OK - total load average: 3.75, 3.60, 2.88|load1=3.750;100.000;200.000;0; load5=3.600;100.000;200.000;0; load15=2.880;100.000;200.000;0; ",
            "LOAD OK - total load average: 3.75, 3.60, 2.88",
            "",
            &[
                "load1=3.75||100.000|200.000|0|",
                "load5=3.6||100.000|200.000|0|",
                "load15=2.88||100.000|200.000|0|",
            ],
            0,
        ),
        (
            "DISK OK - free space: / 75338MiB (80% inode=97%);| /=18573426688B;270552530944;270552530944;0;270552530944",
            "DISK OK - free space: / 75338MiB (80% inode=97%);",
            "",
            &["/=18573426688|B|270552530944|270552530944|0|270552530944"],
            0,
        ),
        (
            "HTTP OK: HTTP/1.1 200 OK - 3 bytes in 0.001 second response time |time=0.000613s;;;0.000000;10.000000 size=3B;;;0;",
            "HTTP OK: HTTP/1.1 200 OK - 3 bytes in 0.001 second response time",
            "",
            &["time=0.000613|s|||0.000000|10.000000", "size=3|B|||0|"],
            0,
        ),
        // Quoted labels: spaces, `=`, an escaped quote, UTF-8.
        (
            "OK | 'used space'=5GB;8;9;0;10",
            "OK",
            "",
            &["used space=5|GB|8|9|0|10"],
            0,
        ),
        ("OK | 'a=b''c'=1", "OK", "", &["a=b'c=1|||||"], 0),
        ("OK | ''''=1", "OK", "", &["'=1|||||"], 0),
        (
            "OK | 'température'=21.5C",
            "OK",
            "",
            &["température=21.5|C||||"],
            0,
        ),
        // Values: undetermined, signs, fractions, exponents; units as written.
        ("OK | x=U;;;0;", "OK", "", &["x=U||||0|"], 0),
        (
            "OK | t=-1.5 u=.5 v=5. w=+3",
            "OK",
            "",
            &["t=-1.5|||||", "u=0.5|||||", "v=5|||||", "w=3|||||"],
            0,
        ),
        (
            "OK | big=1e3B small=2.5E-3s",
            "OK",
            "",
            &["big=1000|B||||", "small=0.0025|s||||"],
            0,
        ),
        ("OK | e=1e", "OK", "", &["e=1|e||||"], 0),
        (
            "OK | packets=12345c rate=5req/s pct=99.5%",
            "OK",
            "",
            &["packets=12345|c||||", "rate=5|req/s||||", "pct=99.5|%||||"],
            0,
        ),
        // Thresholds are ranges, kept as written; extra fields are ignored.
        ("OK | a=5;@10:20;~:30", "OK", "", &["a=5||@10:20|~:30||"], 0),
        ("OK | a=1;2;3;4;5;6;7", "OK", "", &["a=1||2|3|4|5"], 0),
        ("OK |a=1\tb=2", "OK", "", &["a=1|||||", "b=2|||||"], 0),
        // Unreadable items are skipped, the others kept.
        (
            "OK | junk x=1 =2 y= z=abc w=1,5 v=inf",
            "OK",
            "",
            &["x=1|||||"],
            6,
        ),
        ("OK | a=1..2 b=1e400 ''=1 'c' =3", "OK", "", &[], 5),
        ("OK | 'a b=1 c=2", "OK", "", &["b=1|||||", "c=2|||||"], 1),
        ("OK | a=1 | b=2", "OK", "", &["a=1|||||", "b=2|||||"], 1),
        // Long text, then performance data over several lines (the guidelines' example).
        (
            "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n/ 15272 MB (77%);\n/boot 68 MB (69%); | /boot=68MB;88;93;0;98\n/home=69357MB;253404;253409;0;253414\n",
            "DISK OK - free space: / 3326 MB (56%);",
            "/ 15272 MB (77%);\n/boot 68 MB (69%);",
            &[
                "/=2643|MB|5948|5958|0|5968",
                "/boot=68|MB|88|93|0|98",
                "/home=69357|MB|253404|253409|0|253414",
            ],
            0,
        ),
        ("WARN\nline 2\nline 3\n", "WARN", "line 2\nline 3", &[], 0),
        (
            "OK\nmore | a=1\nb=2 'c d'=3",
            "OK",
            "more",
            &["a=1|||||", "b=2|||||", "c d=3|||||"],
            0,
        ),
        ("OK | a=1\r\nb=2\r\n", "OK", "b=2", &["a=1|||||"], 0),
    ];
    for (stdout, text, long_text, items, bad) in cases {
        let out = parse(stdout);
        let shown: Vec<String> = out.perfdata.iter().map(show).collect();
        assert_eq!(out.text, *text, "text of {stdout:?}");
        assert_eq!(out.long_text, *long_text, "long text of {stdout:?}");
        assert_eq!(shown, *items, "items of {stdout:?}");
        assert_eq!(
            out.bad, *bad,
            "unreadable items of {stdout:?}: {:?}",
            out.reasons
        );
        assert_eq!(out.reasons.len(), (*bad).min(REASONS_KEPT));
    }
}

#[test]
fn reasons_name_the_item_and_what_is_wrong() {
    let out = parse("OK | junk 'open=1 z=abc");
    assert_eq!(
        out.reasons,
        [
            "`junk` is not label=value",
            "unterminated quote in `'open=1`",
            "`z=abc`: the value is not a number",
        ]
    );
    let long = format!("OK | {}", "x".repeat(200));
    assert!(parse(&long).reasons[0].ends_with("...` is not label=value"));
}

#[test]
fn units_of_measure_give_type_and_unit() {
    for (uom, kind, unit) in [
        ("", SampleType::Gauge, "1"),
        ("c", SampleType::Cumulative, "count"),
        ("s", SampleType::Gauge, "s"),
        ("ms", SampleType::Gauge, "ms"),
        ("us", SampleType::Gauge, "us"),
        ("%", SampleType::Gauge, "%"),
        ("B", SampleType::Gauge, "B"),
        ("KB", SampleType::Gauge, "KB"),
        ("MB", SampleType::Gauge, "MB"),
        ("GB", SampleType::Gauge, "GB"),
        ("TB", SampleType::Gauge, "TB"),
        ("req/s", SampleType::Gauge, "req/s"),
    ] {
        assert_eq!(kind_and_unit(uom), (kind, unit), "{uom:?}");
    }
}

/// What must hold for any output, however broken.
fn check_invariants(stdout: &str, out: &Output) {
    assert!(out.reasons.len() <= REASONS_KEPT && out.reasons.len() <= out.bad);
    assert!(!out.text.contains(['\n', '|']), "{stdout:?}");
    for p in &out.perfdata {
        assert!(!p.label.is_empty(), "{stdout:?}");
        assert!(p.value.is_none_or(f64::is_finite), "{stdout:?}");
        assert!(!p.uom.contains(char::is_whitespace) && !p.uom.contains(';'));
        for t in [&p.warn, &p.crit, &p.min, &p.max].into_iter().flatten() {
            assert!(!t.is_empty() && !t.contains(char::is_whitespace) && !t.contains(';'));
        }
    }
}

/// One well-formed item and how it is written.
fn item_strategy() -> impl Strategy<Value = (Perf, String)> {
    let label = "[a-zA-Z0-9 '=;|/_.%-]{1,12}";
    let value = prop_oneof![
        4 => prop_oneof![any::<f64>().prop_filter("finite", |v| v.is_finite()), -1e6..1e6f64]
            .prop_map(Some),
        1 => Just(None),
    ];
    let uom = prop::sample::select(vec![
        "", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c", "req/s",
    ]);
    let threshold = prop::option::of("[0-9:~@.-]{1,8}");
    (
        label,
        value,
        uom,
        threshold.clone(),
        threshold.clone(),
        threshold.clone(),
        threshold,
    )
        .prop_map(|(label, value, uom, warn, crit, min, max)| {
            let uom = if value.is_some() { uom } else { "" };
            let number = value.map_or("U".to_owned(), |v| v.to_string());
            let opt = |o: &Option<String>| o.clone().unwrap_or_default();
            let written = format!(
                "'{}'={number}{uom};{};{};{};{}",
                label.replace('\'', "''"),
                opt(&warn),
                opt(&crit),
                opt(&min),
                opt(&max)
            );
            let perf = Perf {
                label,
                value,
                uom: uom.to_owned(),
                warn,
                crit,
                min,
                max,
            };
            (perf, written)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(stdout in any::<String>()) {
        check_invariants(&stdout, &parse(&stdout));
    }

    #[test]
    fn near_perfdata_never_panics(stdout in "[ a-zA-Z0-9'=;|\n\t\r.,:~@+eEU%-]{0,120}") {
        check_invariants(&stdout, &parse(&stdout));
    }

    #[test]
    fn well_formed_items_come_back_as_written(
        text in "[^|\n\r]{0,30}",
        long in prop::collection::vec("[^|\n\r]{0,20}", 0..3),
        items in prop::collection::vec(item_strategy(), 0..8),
        on_first_line in 0..8usize,
        spaces in prop::collection::vec(prop::sample::select(vec![" ", "  ", "\t"]), 8),
        breaks in prop::collection::vec(prop::sample::select(vec![" ", "\n", " \n\t", "\r\n"]), 8),
    ) {
        // The first items on the first line; the others after the long text, over lines.
        let mut stdout = format!("{text}|");
        let split = on_first_line.min(items.len());
        for (i, (_, written)) in items[..split].iter().enumerate() {
            stdout += spaces[i];
            stdout += written;
        }
        if split < items.len() {
            for line in &long {
                stdout += "\n";
                stdout += line;
            }
            stdout += "\n|";
            for (i, (_, written)) in items[split..].iter().enumerate() {
                stdout += breaks[i];
                stdout += written;
            }
        }
        let out = parse(&stdout);
        check_invariants(&stdout, &out);
        prop_assert_eq!(out.bad, 0, "{:?}: {:?}", stdout, out.reasons);
        prop_assert_eq!(&out.text, text.trim());
        if split < items.len() {
            let joined = long.join("\n");
            prop_assert_eq!(&out.long_text, joined.trim());
        }
        let expected: Vec<Perf> = items.into_iter().map(|(p, _)| p).collect();
        prop_assert_eq!(out.perfdata, expected);
    }

    #[test]
    fn mutated_items_never_panic(
        items in prop::collection::vec(item_strategy(), 1..5),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), "[ '=;|\n.eU0-9]{0,2}"), 1..4),
    ) {
        let mut stdout = format!("OK | {}", items.iter().map(|(_, w)| w.as_str()).collect::<Vec<_>>().join(" "));
        for (at, insert) in cuts {
            let chars: Vec<char> = stdout.chars().collect();
            let i = at.index(chars.len() + 1);
            let (head, tail) = chars.split_at(i);
            stdout = head.iter().collect::<String>() + &insert + &tail.iter().skip(1).collect::<String>();
        }
        check_invariants(&stdout, &parse(&stdout));
    }
}
