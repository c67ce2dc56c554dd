//! The SQL92 selector: a lexer, a recursive-descent parser into [`Expr`], and a three-valued
//! evaluator over message properties.

use std::cmp::Ordering;

/// A value during evaluation: strings borrow from the message or the expression, so evaluating
/// allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    Str(&'a str),
}

/// A literal of the expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    Str(String),
}

impl Lit {
    fn value(&self) -> Value<'_> {
        match self {
            Lit::Null => Value::Null,
            Lit::Bool(b) => Value::Bool(*b),
            Lit::Long(n) => Value::Long(*n),
            Lit::Double(d) => Value::Double(*d),
            Lit::Str(s) => Value::Str(s),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StrOp {
    Contains,
    StartsWith,
    EndsWith,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Lit),
    Prop(String),
    /// A property by its index in [`Program::names`] (what [`Program::compile`] makes of `Prop`).
    Slot(usize),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Cmp, Box<Expr>, Box<Expr>),
    IsNull(Box<Expr>, bool),
    Between(Box<Expr>, Box<Expr>, Box<Expr>, bool),
    In(Box<Expr>, Vec<String>, bool),
    Str(StrOp, Box<Expr>, String, bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Kw(&'static str),
    Str(String),
    Long(i64),
    Double(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

const KEYWORDS: [&str; 12] =
    ["AND", "OR", "NOT", "BETWEEN", "IN", "IS", "NULL", "TRUE", "FALSE", "CONTAINS", "STARTSWITH", "ENDSWITH"];

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1
            }
            b'=' => {
                out.push(Tok::Op("="));
                i += 1
            }
            b'<' | b'>' | b'!' => {
                let two = b.get(i + 1).copied();
                let op = match (c, two) {
                    (b'<', Some(b'>')) | (b'!', Some(b'=')) => "<>",
                    (b'<', Some(b'=')) => "<=",
                    (b'>', Some(b'=')) => ">=",
                    (b'<', _) => "<",
                    (b'>', _) => ">",
                    _ => return Err(format!("unexpected `!` at {i}")),
                };
                i += if op.len() == 2 { 2 } else { 1 };
                out.push(Tok::Op(op));
            }
            b'+' | b'-' => {
                out.push(Tok::Op(if c == b'+' { "+" } else { "-" }));
                i += 1
            }
            b'\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&ch) = b.get(i) else { return Err("unterminated string literal".into()) };
                    if ch == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            s.push('\'');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    let start = i;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                    s.push_str(&src[start..i]);
                }
                out.push(Tok::Str(s));
            }
            b'0'..=b'9' | b'.' => {
                let start = i;
                let mut float = false;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i < b.len() && b[i] == b'.' {
                    float = true;
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    float = true;
                    i += 1;
                    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                        i += 1;
                    }
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                let text = &src[start..i];
                if float {
                    out.push(Tok::Double(text.parse().map_err(|_| format!("bad number `{text}`"))?));
                } else {
                    if i < b.len() && (b[i] == b'L' || b[i] == b'l') {
                        i += 1;
                    }
                    out.push(Tok::Long(text.parse().map_err(|_| format!("bad number `{text}`"))?));
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] == b'.') {
                    i += 1;
                }
                let word = &src[start..i];
                let upper = word.to_ascii_uppercase();
                match KEYWORDS.iter().find(|k| **k == upper) {
                    Some(k) => out.push(Tok::Kw(k)),
                    None => out.push(Tok::Ident(word.to_owned())),
                }
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected `{ch}` at {i}"));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn kw(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Kw(w)) if *w == k) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// `NOT` directly before one of `kws` (so `a NOT IN` is not `NOT a`).
    fn not_before(&mut self, kws: &[&str]) -> bool {
        let next_is = matches!(self.toks.get(self.at + 1), Some(Tok::Kw(w)) if kws.contains(w));
        if matches!(self.peek(), Some(Tok::Kw("NOT"))) && next_is {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), String> {
        if self.peek() == Some(&t) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {what}, found {}", self.found()))
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "the end".into(),
            Some(t) => format!("{t:?}"),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.kw("OR") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.equality()?;
        while self.kw("AND") {
            e = Expr::And(Box::new(e), Box::new(self.equality()?));
        }
        Ok(e)
    }

    fn equality(&mut self) -> Result<Expr, String> {
        let mut e = self.comparison()?;
        loop {
            match self.peek() {
                Some(Tok::Op("=")) => {
                    self.at += 1;
                    e = Expr::Compare(Cmp::Eq, Box::new(e), Box::new(self.comparison()?));
                }
                Some(Tok::Op("<>")) => {
                    self.at += 1;
                    e = Expr::Compare(Cmp::Ne, Box::new(e), Box::new(self.comparison()?));
                }
                Some(Tok::Kw("IS")) => {
                    self.at += 1;
                    let not = self.kw("NOT");
                    if !self.kw("NULL") {
                        return Err(format!("expected NULL after IS, found {}", self.found()));
                    }
                    e = Expr::IsNull(Box::new(e), not);
                }
                _ => return Ok(e),
            }
        }
    }

    fn string_literal(&mut self, after: &str) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.at += 1;
                Ok(s)
            }
            _ => Err(format!("expected a string after {after}, found {}", self.found())),
        }
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        loop {
            let cmp = match self.peek() {
                Some(Tok::Op(">")) => Some(Cmp::Gt),
                Some(Tok::Op(">=")) => Some(Cmp::Ge),
                Some(Tok::Op("<")) => Some(Cmp::Lt),
                Some(Tok::Op("<=")) => Some(Cmp::Le),
                _ => None,
            };
            if let Some(c) = cmp {
                self.at += 1;
                e = Expr::Compare(c, Box::new(e), Box::new(self.unary()?));
                continue;
            }
            let not = self.not_before(&["BETWEEN", "IN", "CONTAINS", "STARTSWITH", "ENDSWITH"]);
            if self.kw("BETWEEN") {
                let lo = self.unary()?;
                if !self.kw("AND") {
                    return Err(format!("expected AND in BETWEEN, found {}", self.found()));
                }
                let hi = self.unary()?;
                e = Expr::Between(Box::new(e), Box::new(lo), Box::new(hi), not);
            } else if self.kw("IN") {
                self.expect(Tok::LParen, "( after IN")?;
                let mut items = vec![self.string_literal("IN (")?];
                while self.peek() == Some(&Tok::Comma) {
                    self.at += 1;
                    items.push(self.string_literal(",")?);
                }
                self.expect(Tok::RParen, ") closing IN")?;
                e = Expr::In(Box::new(e), items, not);
            } else if self.kw("CONTAINS") {
                e = Expr::Str(StrOp::Contains, Box::new(e), self.string_literal("CONTAINS")?, not);
            } else if self.kw("STARTSWITH") {
                e = Expr::Str(StrOp::StartsWith, Box::new(e), self.string_literal("STARTSWITH")?, not);
            } else if self.kw("ENDSWITH") {
                e = Expr::Str(StrOp::EndsWith, Box::new(e), self.string_literal("ENDSWITH")?, not);
            } else if not {
                return Err("NOT must be followed by BETWEEN, IN, CONTAINS, STARTSWITH or ENDSWITH here".into());
            } else {
                return Ok(e);
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.kw("NOT") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        match self.peek() {
            Some(Tok::Op("+")) => {
                self.at += 1;
                self.unary()
            }
            Some(Tok::Op("-")) => {
                self.at += 1;
                Ok(match self.unary()? {
                    Expr::Lit(Lit::Long(n)) => Expr::Lit(Lit::Long(n.wrapping_neg())),
                    Expr::Lit(Lit::Double(d)) => Expr::Lit(Lit::Double(-d)),
                    other => Expr::Neg(Box::new(other)),
                })
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let t = self.peek().cloned().ok_or_else(|| "unexpected end of expression".to_string())?;
        self.at += 1;
        Ok(match t {
            Tok::Long(n) => Expr::Lit(Lit::Long(n)),
            Tok::Double(d) => Expr::Lit(Lit::Double(d)),
            Tok::Str(s) => Expr::Lit(Lit::Str(s)),
            Tok::Kw("TRUE") => Expr::Lit(Lit::Bool(true)),
            Tok::Kw("FALSE") => Expr::Lit(Lit::Bool(false)),
            Tok::Kw("NULL") => Expr::Lit(Lit::Null),
            Tok::Ident(name) => Expr::Prop(name),
            Tok::LParen => {
                let e = self.or()?;
                self.expect(Tok::RParen, ")")?;
                e
            }
            other => return Err(format!("unexpected {other:?}")),
        })
    }
}

/// Parses a selector; the error says where it went wrong.
pub fn parse(src: &str) -> Result<Expr, String> {
    let toks = lex(src).map_err(|e| format!("bad expression: {e}"))?;
    let mut p = Parser { toks, at: 0 };
    let e = p.or().map_err(|e| format!("bad expression: {e}"))?;
    if p.at != p.toks.len() {
        return Err(format!("bad expression: unexpected {} after a complete expression", p.found()));
    }
    Ok(e)
}

fn number(s: &str) -> Option<Value<'static>> {
    // The usual case first: a few ASCII digits, nothing to trim.
    let b = s.as_bytes();
    if !b.is_empty() && b.len() <= 18 && b.iter().all(u8::is_ascii_digit) {
        return Some(Value::Long(b.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))));
    }
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Some(Value::Long(n));
    }
    t.parse::<f64>().ok().filter(|d| d.is_finite()).map(Value::Double)
}

fn as_f64(v: &Value<'_>) -> Option<f64> {
    match v {
        Value::Long(n) => Some(*n as f64),
        Value::Double(d) => Some(*d),
        _ => None,
    }
}

/// Compares two non-null values; `Ok(None)` when they cannot be compared (not a match).
fn compare(op: Cmp, l: &Value<'_>, r: &Value<'_>) -> Result<Option<bool>, String> {
    let ordering = |o: Ordering| match op {
        Cmp::Eq => o == Ordering::Equal,
        Cmp::Ne => o != Ordering::Equal,
        Cmp::Gt => o == Ordering::Greater,
        Cmp::Ge => o != Ordering::Less,
        Cmp::Lt => o == Ordering::Less,
        Cmp::Le => o != Ordering::Greater,
    };
    let eq_only = matches!(op, Cmp::Eq | Cmp::Ne);
    Ok(match (l, r) {
        (Value::Long(a), Value::Long(b)) => Some(ordering(a.cmp(b))),
        (Value::Str(a), Value::Str(b)) if eq_only => Some(ordering(a.cmp(b))),
        (Value::Str(a), Value::Str(b)) => match (number(a), number(b)) {
            (Some(x), Some(y)) => return compare(op, &x, &y),
            _ => return Err("it's illegal to compare strings with >, >=, <, <=".into()),
        },
        (Value::Bool(a), Value::Bool(b)) if eq_only => Some(ordering(a.cmp(b))),
        (Value::Str(s), Value::Bool(b)) | (Value::Bool(b), Value::Str(s)) if eq_only => {
            let s = s.trim();
            if s.eq_ignore_ascii_case("true") {
                Some(ordering(true.cmp(b)))
            } else if s.eq_ignore_ascii_case("false") {
                Some(ordering(false.cmp(b)))
            } else {
                Some(op == Cmp::Ne)
            }
        }
        (Value::Str(s), n @ (Value::Long(_) | Value::Double(_))) => match number(s) {
            Some(x) => return compare(op, &x, n),
            None => None,
        },
        (n @ (Value::Long(_) | Value::Double(_)), Value::Str(s)) => match number(s) {
            Some(x) => return compare(op, n, &x),
            None => None,
        },
        (a, b) => match (as_f64(a), as_f64(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).map(ordering),
            _ => None,
        },
    })
}

fn truth(v: &Value<'_>) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

/// Property slots kept on the stack per message; an expression naming more uses the heap.
pub const SLOTS_INLINE_MAX: usize = 16;

/// A condition of a compiled expression, three-valued (`None` is NULL). The common shapes
/// (`prop op number`, `prop = 'text'`) are tested directly; the rest goes through [`Expr::eval`].
#[derive(Debug, Clone, PartialEq)]
enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    /// `slot op number`: the property read as a number (not a number: NULL).
    Number(usize, Cmp, Value<'static>),
    /// `slot = 'text'` (or `<>`).
    Text(usize, String, bool),
    Other(Expr),
}

/// An expression ready to run: every property it reads is a slot, looked up once per message.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    root: Node,
    /// The distinct property names, in first-use order: slot `i` is `names[i]`.
    names: Vec<String>,
}

/// The comparison that gives the same answer with its operands swapped (`4 < a` is `a > 4`).
fn flipped(op: Cmp) -> Cmp {
    match op {
        Cmp::Gt => Cmp::Lt,
        Cmp::Ge => Cmp::Le,
        Cmp::Lt => Cmp::Gt,
        Cmp::Le => Cmp::Ge,
        same => same,
    }
}

impl Node {
    fn of(e: Expr) -> Node {
        match e {
            Expr::And(a, b) => Node::And(Box::new(Node::of(*a)), Box::new(Node::of(*b))),
            Expr::Or(a, b) => Node::Or(Box::new(Node::of(*a)), Box::new(Node::of(*b))),
            Expr::Not(a) => Node::Not(Box::new(Node::of(*a))),
            Expr::Compare(op, a, b) => match (*a, *b) {
                (Expr::Slot(i), Expr::Lit(Lit::Long(n))) => Node::Number(i, op, Value::Long(n)),
                (Expr::Slot(i), Expr::Lit(Lit::Double(d))) => Node::Number(i, op, Value::Double(d)),
                (Expr::Lit(Lit::Long(n)), Expr::Slot(i)) => Node::Number(i, flipped(op), Value::Long(n)),
                (Expr::Lit(Lit::Double(d)), Expr::Slot(i)) => Node::Number(i, flipped(op), Value::Double(d)),
                (Expr::Slot(i), Expr::Lit(Lit::Str(t))) | (Expr::Lit(Lit::Str(t)), Expr::Slot(i))
                    if matches!(op, Cmp::Eq | Cmp::Ne) =>
                {
                    Node::Text(i, t, op == Cmp::Ne)
                }
                (a, b) => Node::Other(Expr::Compare(op, Box::new(a), Box::new(b))),
            },
            other => Node::Other(other),
        }
    }

    /// The same three-valued logic as [`Expr::eval`].
    fn test(&self, slots: &[Option<&str>]) -> Result<Option<bool>, String> {
        Ok(match self {
            Node::And(a, b) => {
                let l = a.test(slots)?;
                if l == Some(false) {
                    return Ok(Some(false));
                }
                match (l, b.test(slots)?) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                }
            }
            Node::Or(a, b) => {
                let l = a.test(slots)?;
                if l == Some(true) {
                    return Ok(Some(true));
                }
                match (l, b.test(slots)?) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                }
            }
            Node::Not(a) => a.test(slots)?.map(|b| !b),
            Node::Number(i, op, n) => match slots.get(*i).copied().flatten().and_then(number) {
                Some(x) => compare(*op, &x, n)?,
                None => None,
            },
            Node::Text(i, t, ne) => slots.get(*i).copied().flatten().map(|s| (s == t.as_str()) != *ne),
            Node::Other(e) => truth(&e.eval(slots)?),
        })
    }
}

impl Program {
    /// Replaces each `Prop` of `expr` by the slot of its name, and picks the direct tests.
    pub fn compile(mut expr: Expr) -> Program {
        let mut names = Vec::new();
        expr.resolve(&mut names);
        Program { root: Node::of(expr), names }
    }

    /// The property names the slots stand for.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// True only if the expression evaluates to TRUE, given the value of each slot (`None`:
    /// the message lacks it).
    pub fn matches_slots(&self, slots: &[Option<&str>]) -> Result<bool, String> {
        Ok(self.root.test(slots)? == Some(true))
    }

    /// [`Program::matches_slots`] with each slot read through `prop`.
    pub fn matches<'m>(&self, prop: impl Fn(&str) -> Option<&'m str>) -> Result<bool, String> {
        let mut inline = [None; SLOTS_INLINE_MAX];
        let mut heap = Vec::new();
        let slots: &mut [Option<&'m str>] = if self.names.len() <= SLOTS_INLINE_MAX {
            &mut inline[..self.names.len()]
        } else {
            heap.resize(self.names.len(), None);
            &mut heap
        };
        for (slot, name) in slots.iter_mut().zip(&self.names) {
            *slot = prop(name);
        }
        self.matches_slots(slots)
    }
}

impl Expr {
    fn resolve(&mut self, names: &mut Vec<String>) {
        match self {
            Expr::Prop(name) => {
                let slot = match names.iter().position(|n| n == name) {
                    Some(i) => i,
                    None => {
                        names.push(std::mem::take(name));
                        names.len() - 1
                    }
                };
                *self = Expr::Slot(slot);
            }
            Expr::Lit(_) | Expr::Slot(_) => {}
            Expr::Neg(e) | Expr::Not(e) | Expr::IsNull(e, _) | Expr::In(e, _, _) | Expr::Str(_, e, _, _) => {
                e.resolve(names)
            }
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(_, a, b) => {
                a.resolve(names);
                b.resolve(names);
            }
            Expr::Between(e, lo, hi, _) => {
                e.resolve(names);
                lo.resolve(names);
                hi.resolve(names);
            }
        }
    }

    /// Evaluates over the slots of a compiled expression ([`Program::compile`]).
    fn eval<'a>(&'a self, prop: &[Option<&'a str>]) -> Result<Value<'a>, String> {
        Ok(match self {
            Expr::Lit(v) => v.value(),
            Expr::Slot(i) => prop.get(*i).copied().flatten().map_or(Value::Null, Value::Str),
            Expr::Prop(name) => return Err(format!("property `{name}` is not compiled to a slot")),
            Expr::Neg(e) => match e.eval(prop)? {
                Value::Long(n) => Value::Long(n.wrapping_neg()),
                Value::Double(d) => Value::Double(-d),
                Value::Str(s) => match number(s) {
                    Some(Value::Long(n)) => Value::Long(n.wrapping_neg()),
                    Some(Value::Double(d)) => Value::Double(-d),
                    _ => Value::Null,
                },
                _ => Value::Null,
            },
            Expr::Not(e) => match truth(&e.eval(prop)?) {
                Some(b) => Value::Bool(!b),
                None => Value::Null,
            },
            Expr::And(a, b) => {
                let l = truth(&a.eval(prop)?);
                if l == Some(false) {
                    return Ok(Value::Bool(false));
                }
                match (l, truth(&b.eval(prop)?)) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                }
            }
            Expr::Or(a, b) => {
                let l = truth(&a.eval(prop)?);
                if l == Some(true) {
                    return Ok(Value::Bool(true));
                }
                match (l, truth(&b.eval(prop)?)) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                }
            }
            Expr::Compare(op, a, b) => {
                // A property compared as it is, without a copy.
                let l = a.eval(prop)?;
                let r = b.eval(prop)?;
                if l == Value::Null || r == Value::Null {
                    return Ok(Value::Null);
                }
                compare(*op, &l, &r)?.map_or(Value::Null, Value::Bool)
            }
            Expr::IsNull(e, not) => Value::Bool((e.eval(prop)? == Value::Null) != *not),
            Expr::Between(e, lo, hi, not) => {
                let v = e.eval(prop)?;
                let (lo, hi) = (lo.eval(prop)?, hi.eval(prop)?);
                if v == Value::Null || lo == Value::Null || hi == Value::Null {
                    return Ok(Value::Null);
                }
                match (compare(Cmp::Ge, &v, &lo)?, compare(Cmp::Le, &v, &hi)?) {
                    (Some(a), Some(b)) => Value::Bool((a && b) != *not),
                    _ => Value::Null,
                }
            }
            Expr::In(e, items, not) => match e.eval(prop)? {
                Value::Str(s) => Value::Bool(items.iter().any(|i| i == s) != *not),
                Value::Null => Value::Null,
                other => {
                    let text = match other {
                        Value::Long(n) => n.to_string(),
                        Value::Double(d) => d.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => String::new(),
                    };
                    Value::Bool(items.contains(&text) != *not)
                }
            },
            Expr::Str(op, e, needle, not) => match e.eval(prop)? {
                Value::Str(s) => {
                    let hit = match op {
                        StrOp::Contains => s.contains(needle.as_str()),
                        StrOp::StartsWith => s.starts_with(needle.as_str()),
                        StrOp::EndsWith => s.ends_with(needle.as_str()),
                    };
                    Value::Bool(hit != *not)
                }
                _ => Value::Null,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Node, Program, parse};

    #[test]
    fn direct_tests_agree_with_the_evaluator() {
        let exprs = [
            "a > 4",
            "4 < a",
            "a >= 4.5 AND a <= 8",
            "region = 'eu'",
            "'eu' = region",
            "region <> 'eu'",
            "NOT (a > 4) OR region = 'us'",
            "a = 7 OR b IS NULL",
            "a BETWEEN 2 AND 8 AND region IN ('eu', 'us')",
        ];
        let values: [&[Option<&str>]; 6] = [
            &[Some("7"), Some("eu"), None],
            &[Some(" 3 "), Some("us"), Some("x")],
            &[Some("4.5"), None, None],
            &[Some("x"), Some("eu"), None],
            &[None, None, None],
            &[Some("-12"), Some("EU"), Some("")],
        ];
        for text in exprs {
            let program = Program::compile(parse(text).expect("parses"));
            assert!(!matches!(program.root, Node::Other(_)), "{text}: a direct test at the root");
            // The same tree as one evaluator call, to compare against.
            let mut generic = program.clone();
            let mut e = parse(text).expect("parses");
            e.resolve(&mut Vec::new());
            generic.root = Node::Other(e);
            for v in values {
                // Slots follow first use; give each its value by name.
                let slots: Vec<Option<&str>> = program
                    .names()
                    .iter()
                    .map(|n| match n.as_str() {
                        "a" => v[0],
                        "region" => v[1],
                        _ => v[2],
                    })
                    .collect();
                assert_eq!(program.matches_slots(&slots), generic.matches_slots(&slots), "{text} over {v:?}");
            }
        }
    }
}
