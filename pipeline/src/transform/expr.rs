//! A small, safe arithmetic expression language for `scale` and `expr` parameters (never eval).
//!
//! Grammar (Python's precedence, lowest first):
//!
//! ```text
//! or_expr    := comparison ("or" comparison)*
//! comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?     (not chained)
//! sum        := term (("+" | "-") term)*
//! term       := unary (("*" | "/") unary)*
//! unary      := ("-" | "+") unary | power
//! power      := atom ("**" unary)?                                    (right-associative)
//! atom       := number | "volume" | "resource_metadata." key ("." key)* | "$(" meter ")" | "(" or_expr ")"
//! ```
//!
//! `a or b` is `a` when `a` is present and non-zero, else `b` (Python's defaulting idiom).
//! Comparisons give 1.0 or 0.0. An expression is parsed once, at start-up, and evaluated per
//! sample; evaluation never panics and refuses absent values, division by zero and non-finite
//! results.

use std::fmt;

use hb_sample::{Metadata, Sample};
use serde_json::Value;

mod parse;

/// What an expression may refer to, besides numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `scale`: `volume` and `resource_metadata.<key>` of the sample being converted.
    Sample,
    /// `arithmetic`: `$(meter)` operands and `resource_metadata.<key>` of the newest operand.
    Meters,
}

/// A variable of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Var {
    /// `volume`.
    Volume,
    /// `resource_metadata.a.b`: the dotted path after `resource_metadata.`.
    Metadata(Vec<String>),
    /// `$(memory.usage)`.
    Meter(String),
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::Volume => f.write_str("volume"),
            Var::Metadata(path) => write!(f, "resource_metadata.{}", path.join(".")),
            Var::Meter(name) => write!(f, "$({name})"),
        }
    }
}

/// Why an expression could not be parsed; `column` is 1-based, in characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {column}")]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// Where (1-based character column).
    pub column: usize,
}

/// Why an expression gave no value for one sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A variable is missing, null or not a number, and no `or` replaced it.
    #[error("`{0}` is absent or not a number")]
    Absent(String),
    /// `x / 0`.
    #[error("division by zero")]
    DivisionByZero,
    /// NaN or an infinity.
    #[error("the result is not a finite number")]
    NotFinite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Num(f64),
    Var(Var),
    Neg(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    root: Node,
}

impl Expr {
    /// Parses `source`, accepting the variables of `scope`.
    pub fn parse(source: &str, scope: Scope) -> Result<Self, ParseError> {
        parse::parse(source, scope).map(|root| Self { root })
    }

    /// The distinct meters referred to as `$(name)`, in order of first appearance.
    pub fn meters(&self) -> Vec<String> {
        fn walk(node: &Node, out: &mut Vec<String>) {
            match node {
                Node::Var(Var::Meter(m)) if !out.contains(m) => out.push(m.clone()),
                Node::Num(_) | Node::Var(_) => {}
                Node::Neg(a) => walk(a, out),
                Node::Bin(_, a, b) | Node::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// Evaluates with `resolve` giving each variable's value (`None` = absent).
    pub fn eval(&self, resolve: &dyn Fn(&Var) -> Option<f64>) -> Result<f64, EvalError> {
        let v = eval(&self.root, resolve)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(EvalError::NotFinite)
        }
    }

    /// Evaluates against one sample's volume and metadata.
    pub fn eval_sample(&self, sample: &Sample) -> Result<f64, EvalError> {
        self.eval(&|var| match var {
            Var::Volume => Some(sample.volume()),
            Var::Metadata(path) => metadata_number(&sample.resource_metadata, path),
            Var::Meter(_) => None,
        })
    }
}

/// The number at `path` in `metadata`: a JSON number, a boolean (1/0) or a string that parses
/// as a finite number. A dotted key is looked up whole first, then through nested objects.
pub fn metadata_number(metadata: &Metadata, path: &[String]) -> Option<f64> {
    let (first, rest) = path.split_first()?;
    if rest.is_empty() {
        // The usual case, looked up without building the dotted key.
        return metadata.get(first).and_then(number);
    }
    if let Some(v) = metadata.get(&path.join(".")) {
        return number(v);
    }
    match metadata.get(first)? {
        Value::Object(inner) if !rest.is_empty() => metadata_number(inner, rest),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

fn eval(node: &Node, resolve: &dyn Fn(&Var) -> Option<f64>) -> Result<f64, EvalError> {
    Ok(match node {
        Node::Num(n) => *n,
        Node::Var(var) => resolve(var).ok_or_else(|| EvalError::Absent(var.to_string()))?,
        Node::Neg(a) => -eval(a, resolve)?,
        Node::Or(a, b) => match eval(a, resolve) {
            Ok(v) if v != 0.0 => v,
            Ok(_) | Err(EvalError::Absent(_)) => eval(b, resolve)?,
            Err(e) => return Err(e),
        },
        Node::Bin(op, a, b) => {
            let (a, b) = (eval(a, resolve)?, eval(b, resolve)?);
            let truth = |c: bool| if c { 1.0 } else { 0.0 };
            match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div if b == 0.0 => return Err(EvalError::DivisionByZero),
                BinOp::Div => a / b,
                BinOp::Pow if a == 0.0 && b < 0.0 => return Err(EvalError::DivisionByZero),
                BinOp::Pow => a.powf(b),
                BinOp::Lt => truth(a < b),
                BinOp::Le => truth(a <= b),
                BinOp::Gt => truth(a > b),
                BinOp::Ge => truth(a >= b),
                BinOp::Eq => truth(a == b),
                BinOp::Ne => truth(a != b),
            }
        }
    })
}

#[cfg(test)]
mod tests;
