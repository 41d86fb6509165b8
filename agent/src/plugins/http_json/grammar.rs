//! The grammar of the operations that may follow a path: `| name | name(argument, ...)`.

use serde_json::Value;

use super::ops::{Op, number};

/// The operations and their arguments, for error messages.
pub const VALID: &str = "split(sep), index(i), trim, lowercase, uppercase, replace(from, to), \
                         add(n), sub(n), mul(n), div(n), to_number, length, default(value)";

/// Parses the operations that follow a path in `text`, from byte `start`: nothing, or
/// `| op | op ...`. Positions in errors count bytes from the start of `text`, from 0.
pub fn parse(text: &str, start: usize) -> Result<Vec<Op>, String> {
    let mut c = Cursor { text, pos: start };
    let mut ops = Vec::new();
    loop {
        c.skip_ws();
        if c.at_end() {
            return Ok(ops);
        }
        if !c.eat('|') {
            return Err(c.unexpected("`|` before the next operation"));
        }
        c.skip_ws();
        let at = c.pos;
        let name = c.ident();
        if name.is_empty() {
            return Err(c.unexpected("an operation name"));
        }
        c.skip_ws();
        let args = if c.eat('(') { c.args()? } else { Vec::new() };
        let op =
            make(name, args).map_err(|e| format!("operation `{name}` at position {at}: {e}"))?;
        ops.push(op);
    }
}

/// An argument as written.
#[derive(Debug)]
enum Arg {
    Number(f64),
    Text(String),
    Literal(Value),
}

fn make(name: &str, args: Vec<Arg>) -> Result<Op, String> {
    let given = args.len();
    let count = |n: usize| {
        if given == n {
            Ok(())
        } else {
            Err(format!("takes {n} argument(s), got {given}"))
        }
    };
    let mut args = args.into_iter();
    let mut text = || match args.next() {
        Some(Arg::Text(s)) => Ok(s),
        _ => Err("expects a quoted string".to_owned()),
    };
    Ok(match name {
        "split" => {
            count(1)?;
            let sep = text()?;
            if sep.is_empty() {
                return Err("the separator must not be empty".into());
            }
            Op::Split(sep)
        }
        "replace" => {
            count(2)?;
            let (from, to) = (text()?, text()?);
            if from.is_empty() {
                return Err("the string to replace must not be empty".into());
            }
            Op::Replace(from, to)
        }
        "index" => {
            count(1)?;
            match args.next() {
                Some(Arg::Number(n)) if n.fract() == 0.0 && n.abs() < 1e15 =>
                {
                    #[allow(clippy::cast_possible_truncation)]
                    Op::Index(n as i64)
                }
                _ => return Err("expects an integer".into()),
            }
        }
        "add" | "sub" | "mul" | "div" => {
            count(1)?;
            let Some(Arg::Number(n)) = args.next() else {
                return Err("expects a number".into());
            };
            match name {
                "add" => Op::Add(n),
                "sub" => Op::Sub(n),
                "mul" => Op::Mul(n),
                _ if n == 0.0 => return Err("cannot divide by zero".into()),
                _ => Op::Div(n),
            }
        }
        "default" => {
            count(1)?;
            Op::Default(match args.next() {
                Some(Arg::Number(n)) => number(n).ok_or("expects a finite number")?,
                Some(Arg::Text(s)) => Value::String(s),
                Some(Arg::Literal(v)) => v,
                None => Value::Null,
            })
        }
        "trim" | "lowercase" | "uppercase" | "to_number" | "length" => {
            count(0)?;
            match name {
                "trim" => Op::Trim,
                "lowercase" => Op::Lowercase,
                "uppercase" => Op::Uppercase,
                "to_number" => Op::ToNumber,
                _ => Op::Length,
            }
        }
        _ => return Err(format!("unknown operation; valid ones are {VALID}")),
    })
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, want: char) -> bool {
        let hit = self.peek() == Some(want);
        if hit {
            self.pos += want.len_utf8();
        }
        hit
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.bump();
        }
        &self.text[start..self.pos]
    }

    fn ident(&mut self) -> &'a str {
        self.take_while(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    fn unexpected(&self, expected: &str) -> String {
        match self.peek() {
            Some(c) => format!("expected {expected} at position {}, found `{c}`", self.pos),
            None => format!(
                "expected {expected} at position {}, found the end",
                self.pos
            ),
        }
    }

    /// The arguments after `(`, up to and including `)`.
    fn args(&mut self) -> Result<Vec<Arg>, String> {
        let mut args = Vec::new();
        self.skip_ws();
        if self.eat(')') {
            return Ok(args);
        }
        loop {
            self.skip_ws();
            args.push(self.arg()?);
            self.skip_ws();
            if self.eat(')') {
                return Ok(args);
            }
            if !self.eat(',') {
                return Err(self.unexpected("`,` or `)`"));
            }
        }
    }

    fn arg(&mut self) -> Result<Arg, String> {
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                self.bump();
                self.string(q).map(Arg::Text)
            }
            Some(c) if c == '-' || c == '+' || c == '.' || c.is_ascii_digit() => {
                let at = self.pos;
                let raw = self
                    .take_while(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
                match raw.parse::<f64>() {
                    Ok(n) if n.is_finite() => Ok(Arg::Number(n)),
                    _ => Err(format!("`{raw}` at position {at} is not a finite number")),
                }
            }
            _ => {
                let (at, expected) = (self.pos, "a quoted string, a number, true, false or null");
                match self.ident() {
                    "true" => Ok(Arg::Literal(Value::Bool(true))),
                    "false" => Ok(Arg::Literal(Value::Bool(false))),
                    "null" => Ok(Arg::Literal(Value::Null)),
                    "" => Err(self.unexpected(expected)),
                    word => Err(format!(
                        "expected {expected} at position {at}, found `{word}`"
                    )),
                }
            }
        }
    }

    /// A string after its opening quote `q`, up to and including the closing one.
    fn string(&mut self, q: char) -> Result<String, String> {
        let start = self.pos;
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(format!("string starting at position {start} is not closed"));
                }
                Some(c) if c == q => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(c @ ('\\' | '\'' | '"')) => out.push(c),
                    _ => {
                        return Err(format!(
                            "bad escape at position {}; use \\\\, \\', \\\", \\n or \\t",
                            self.pos
                        ));
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistakes_are_explained() {
        let err = |ops: &str| parse(ops, 0).expect_err(ops);
        assert!(err("| eval('1')").contains("unknown operation; valid ones are split(sep)"));
        assert!(err("| div(0)").contains("cannot divide by zero"));
        assert!(err("| index(1.5)").contains("expects an integer"));
        assert!(err("| split('')").contains("must not be empty"));
        assert!(err("| split(1)").contains("expects a quoted string"));
        assert!(err("| trim(1)").contains("takes 0 argument(s), got 1"));
        assert!(err("| replace('a')").contains("takes 2 argument(s), got 1"));
        assert!(err("| split('/").contains("not closed"));
        assert!(err("| split('/' 'x')").contains("expected `,` or `)`"));
        assert!(err("trim").contains("expected `|` before the next operation at position 0"));
        assert!(err("| ").contains("expected an operation name at position 2, found the end"));
        assert!(err("| add(1e999)").contains("not a finite number"));
        assert!(err("| add(--)").contains("`--` at position 6 is not a finite number"));
        assert!(
            err("| default(x)").contains("a number, true, false or null at position 10, found `x`")
        );
    }
}
