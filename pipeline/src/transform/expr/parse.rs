//! The lexer and the recursive-descent parser of [`Expr`](super::Expr) (grammar in `expr.rs`).

use super::{BinOp, Node, ParseError, Scope, Var};

/// Parses `source` into the root of its syntax tree.
pub(super) fn parse(source: &str, scope: Scope) -> Result<Node, ParseError> {
    let mut parser = Parser {
        tokens: lex(source)?,
        pos: 0,
        scope,
        end: source.chars().count() + 1,
    };
    let root = parser.or_expr()?;
    if let Some(tok) = parser.peek() {
        return Err(parser.unexpected(tok));
    }
    Ok(root)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Meter(String),
    Sym(&'static str),
}

/// A token, its source text and its 1-based column.
#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    text: String,
    column: usize,
}

const SYMBOLS: [&str; 13] = [
    "**", "<=", ">=", "==", "!=", "+", "-", "*", "/", "<", ">", "(", ")",
];

fn lex(source: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let err = |message: String, at: usize| ParseError {
        message,
        column: at + 1,
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let tok = if c.is_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && matches!(chars[i], 'e' | 'E') {
                i += 1;
                if i < chars.len() && matches!(chars[i], '+' | '-') {
                    i += 1;
                }
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            match text.parse::<f64>() {
                Ok(n) if n.is_finite() => Tok::Num(n),
                _ => return Err(err(format!("malformed number `{text}`"), start)),
            }
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.')) {
                i += 1;
            }
            Tok::Name(chars[start..i].iter().collect())
        } else if rest == "$(" {
            let close = chars[i..]
                .iter()
                .position(|&c| c == ')')
                .ok_or_else(|| err("unterminated `$(`".into(), start))?;
            let name: String = chars[i + 2..i + close].iter().collect();
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(err(format!("malformed meter reference `$({name})`"), start));
            }
            i += close + 1;
            Tok::Meter(name.to_owned())
        } else if let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            i += sym.len();
            Tok::Sym(sym)
        } else {
            return Err(err(format!("unexpected `{c}`"), start));
        };
        tokens.push(Token {
            tok,
            text: chars[start..i].iter().collect(),
            column: start + 1,
        });
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    scope: Scope,
    /// Column just past the end, for "unexpected end".
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, sym: &str) -> bool {
        let hit = matches!(self.peek(), Some(Token { tok: Tok::Sym(s), .. }) if *s == sym);
        self.pos += usize::from(hit);
        hit
    }

    fn eat_any(&mut self, syms: &[(&str, BinOp)]) -> Option<BinOp> {
        syms.iter().find(|(s, _)| self.eat(s)).map(|&(_, op)| op)
    }

    fn unexpected(&self, tok: &Token) -> ParseError {
        ParseError {
            message: format!("unexpected `{}`", tok.text),
            column: tok.column,
        }
    }

    fn or_expr(&mut self) -> Result<Node, ParseError> {
        let mut node = self.comparison()?;
        while matches!(self.peek(), Some(Token { tok: Tok::Name(n), .. }) if n == "or") {
            self.pos += 1;
            node = Node::Or(Box::new(node), Box::new(self.comparison()?));
        }
        Ok(node)
    }

    fn comparison(&mut self) -> Result<Node, ParseError> {
        const CMP: [(&str, BinOp); 6] = [
            ("<=", BinOp::Le),
            (">=", BinOp::Ge),
            ("==", BinOp::Eq),
            ("!=", BinOp::Ne),
            ("<", BinOp::Lt),
            (">", BinOp::Gt),
        ];
        let node = self.sum()?;
        let Some(op) = self.eat_any(&CMP) else {
            return Ok(node);
        };
        let node = Node::Bin(op, Box::new(node), Box::new(self.sum()?));
        if let Some(tok) = self.peek()
            && CMP.iter().any(|(s, _)| tok.tok == Tok::Sym(s))
        {
            return Err(ParseError {
                message: "comparisons cannot be chained (add parentheses)".into(),
                column: tok.column,
            });
        }
        Ok(node)
    }

    fn sum(&mut self) -> Result<Node, ParseError> {
        let mut node = self.term()?;
        while let Some(op) = self.eat_any(&[("+", BinOp::Add), ("-", BinOp::Sub)]) {
            node = Node::Bin(op, Box::new(node), Box::new(self.term()?));
        }
        Ok(node)
    }

    fn term(&mut self) -> Result<Node, ParseError> {
        let mut node = self.unary()?;
        // `**` is one token, so `*` here is never the start of a power.
        while let Some(op) = self.eat_any(&[("*", BinOp::Mul), ("/", BinOp::Div)]) {
            node = Node::Bin(op, Box::new(node), Box::new(self.unary()?));
        }
        Ok(node)
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        if self.eat("-") {
            Ok(Node::Neg(Box::new(self.unary()?)))
        } else if self.eat("+") {
            self.unary()
        } else {
            self.power()
        }
    }

    fn power(&mut self) -> Result<Node, ParseError> {
        let base = self.atom()?;
        if self.eat("**") {
            Ok(Node::Bin(
                BinOp::Pow,
                Box::new(base),
                Box::new(self.unary()?),
            ))
        } else {
            Ok(base)
        }
    }

    fn atom(&mut self) -> Result<Node, ParseError> {
        let Some(token) = self.peek().cloned() else {
            return Err(ParseError {
                message: "unexpected end of expression".into(),
                column: self.end,
            });
        };
        self.pos += 1;
        let name_error = |message: String| ParseError {
            message,
            column: token.column,
        };
        match &token.tok {
            Tok::Num(n) => Ok(Node::Num(*n)),
            Tok::Sym(s) if *s == "(" => {
                let node = self.or_expr()?;
                if self.eat(")") {
                    return Ok(node);
                }
                Err(match self.peek() {
                    Some(tok) => self.unexpected(tok),
                    None => ParseError {
                        message: "missing `)`".into(),
                        column: self.end,
                    },
                })
            }
            Tok::Sym(_) => Err(self.unexpected(&token)),
            Tok::Meter(m) if self.scope == Scope::Meters => Ok(Node::Var(Var::Meter(m.clone()))),
            Tok::Meter(_) => Err(name_error(format!(
                "`{}` meter references are only allowed in arithmetic",
                token.text
            ))),
            Tok::Name(n) if n == "or" => Err(self.unexpected(&token)),
            Tok::Name(n) if n == "volume" && self.scope == Scope::Sample => {
                Ok(Node::Var(Var::Volume))
            }
            Tok::Name(n) => match n.strip_prefix("resource_metadata.") {
                Some(key) if !key.split('.').any(str::is_empty) => Ok(Node::Var(Var::Metadata(
                    key.split('.').map(str::to_owned).collect(),
                ))),
                _ => Err(name_error(format!(
                    "unknown name `{n}` (available: {})",
                    match self.scope {
                        Scope::Sample => "volume, resource_metadata.<key>",
                        Scope::Meters => "$(<meter>), resource_metadata.<key>",
                    }
                ))),
            },
        }
    }
}
