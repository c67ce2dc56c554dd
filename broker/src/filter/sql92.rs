//! The SQL92 property filter: lexer, parser and evaluator of RocketMQ's message selector.
//!
//! # Grammar (RocketMQ 4.9.4 `SelectorParser.jj`, plus what 5.1.3 added)
//!
//! ```text
//! expression  := or
//! or          := and ( OR and )*
//! and         := equality ( AND equality )*
//! equality    := comparison ( '=' comparison | '<>' comparison | IS NULL | IS NOT NULL )*
//! comparison  := unary ( ('>' | '>=' | '<' | '<=') unary
//!                      | [NOT] BETWEEN unary AND unary
//!                      | [NOT] IN '(' string ( ',' string )* ')'
//!                      | [NOT] (CONTAINS | STARTSWITH | ENDSWITH) string )*      -- 5.1.3+
//! unary       := '+' unary | '-' unary | NOT unary | primary
//! primary     := string | decimal | float | TRUE | FALSE | NULL | identifier | '(' or ')'
//! ```
//!
//! * Keywords are case-insensitive: `NOT AND OR BETWEEN IN TRUE FALSE NULL IS`. `CONTAINS`,
//!   `STARTSWITH` and `ENDSWITH` came with RocketMQ 5.1.3 (4.9.4 has none of them); here they are
//!   keywords only where an operator is expected, so 4.9.4 property names such as `contains` still
//!   work.
//! * Identifiers: `[A-Za-z_$][A-Za-z0-9_$]*` (no `.`: neither 4.9.4 nor 5.x allows it).
//! * Strings: `'...'` with `''` for a quote. Decimals: `0` or `[1-9][0-9]*` with an optional
//!   `l`/`L`; an `int` when it fits, else a `long`. Floats: `1.`, `1.5`, `.5`, `1e5`, `1.5E-3`.
//! * Whitespace is space, tab, CR, LF and form feed; comments are `-- ...` to the end of the line
//!   and `/* ... */`.
//! * `NOT` is a prefix operator that binds tighter than comparisons, as in 4.9.4: `NOT a = 'x'` is
//!   `(NOT a) = 'x'` and never matches; write `NOT (a = 'x')` or `a <> 'x'`.
//!
//! Deliberate differences from the Java parser: trailing input is an error (Java stops parsing at
//! the first token that cannot continue and silently ignores the rest, so `a = 1 b = 2` means
//! `a = 1` there); `!=` is accepted as `<>` (neither 4.9.4 nor 5.x has it); a float literal of
//! zero (`0.0`) is accepted (Java refuses values below `Double.MIN_VALUE`); a `--` comment may
//! end the input without a newline.
//!
//! # Semantics (the `filter.expression` classes of 4.9.4)
//!
//! Property values are strings; a missing property is NULL. Results are TRUE, FALSE or NULL and
//! a message matches only on TRUE. Where Java throws during evaluation (a property that is not a
//! number compared with a number, two strings compared with `<`, ...) the whole expression fails
//! and the message does not match, even under `OR` or `NOT`. In detail:
//!
//! * `x = y`: NULL if `x` is NULL and `y` is not, FALSE if only `y` is NULL, TRUE if both are.
//!   A string compared with a number is parsed as that number's type (`Integer.valueOf`,
//!   `Long.valueOf`, `Double.valueOf`; failure fails the expression); with TRUE/FALSE it is true
//!   when it equals `true` ignoring case. `TRUE = a` with `a` a string fails, as in Java.
//! * `<>` is `NOT (=)`; `IS NULL`, `IS NOT NULL` never yield NULL.
//! * `<`, `<=`, `>`, `>=`: NULL when either side is NULL; two strings are both parsed as doubles.
//! * `a BETWEEN x AND y` is `a >= x AND a <= y`; `NOT BETWEEN` is `a < x OR a > y`.
//! * `IN`/`NOT IN`: NULL when the property is missing.
//! * `CONTAINS` and friends (5.x): FALSE when the value is NULL or not a string or the pattern is
//!   empty, for the `NOT` forms as well.
//! * `AND`/`OR`: SQL three-valued logic, evaluated left to right with short circuit.
//! * A bare property used as a condition is NULL when missing, otherwise FALSE (it is a string,
//!   not a boolean).
//!
//! Parse-time checks as in Java: `=`/`<>` refuse a NULL literal, relational operators and
//! `BETWEEN` refuse string and boolean literals and boolean expressions, constant `BETWEEN`
//! bounds must be ordered, `IN` needs a bare property on its left, and `AND`/`OR`/`NOT` and the
//! whole expression need a boolean or a property.
//!
//! Not supported from Java's number parsing: non-ASCII digits and hexadecimal floats in property
//! values (such a value fails the comparison instead).

use std::cmp::Ordering;

use super::{Error, Properties, SQL_EXPRESSION_BYTES_MAX, SQL_NESTING_DEPTH_MAX};

/// A compiled SQL92 expression: parse once per subscription, evaluate per message.
#[derive(Debug, Clone)]
pub struct SqlFilter {
    expression: Box<str>,
    root: Node,
}

impl SqlFilter {
    /// Parses an SQL92 expression.
    ///
    /// # Errors
    ///
    /// [`Error::SqlTooLong`] over [`SQL_EXPRESSION_BYTES_MAX`], [`Error::SqlTooDeep`] over
    /// [`SQL_NESTING_DEPTH_MAX`], [`Error::SqlSyntax`] with the byte position otherwise.
    pub fn parse(expr: &str) -> Result<SqlFilter, Error> {
        if expr.len() > SQL_EXPRESSION_BYTES_MAX {
            return Err(Error::SqlTooLong { bytes: expr.len(), bytes_max: SQL_EXPRESSION_BYTES_MAX });
        }
        let mut parser = Parser { tokens: lex(expr)?, next: 0, depth: 0 };
        let root = parser.parse_or()?;
        let end = parser.advance();
        if end.tok != Tok::End {
            return Err(syntax(end.position, format!("unexpected {} after the end of the expression", end.tok)));
        }
        let root = as_boolean(root)?;
        Ok(SqlFilter { expression: expr.into(), root: root.node })
    }

    /// The expression this filter was parsed from.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether a message with these properties matches: the expression is TRUE (not FALSE, not
    /// NULL, and evaluation did not fail). Does not allocate.
    pub fn matches<P: Properties + ?Sized>(&self, properties: &P) -> bool {
        matches!(eval(&self.root, properties), Ok(Value::Bool(true)))
    }

    /// The three-valued result, with `None` for NULL and `Err(())` where Java would throw.
    #[cfg(test)]
    pub(super) fn evaluate<P: Properties + ?Sized>(&self, properties: &P) -> Result<Option<bool>, ()> {
        match eval(&self.root, properties) {
            Ok(Value::Bool(b)) => Ok(Some(b)),
            Ok(Value::Null) => Ok(None),
            Ok(_) | Err(Abort) => Err(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Not,
    And,
    Or,
    Between,
    In,
    True,
    False,
    Null,
    Is,
}

impl Keyword {
    const ALL: [(Keyword, &'static str); 9] = [
        (Keyword::Not, "NOT"),
        (Keyword::And, "AND"),
        (Keyword::Or, "OR"),
        (Keyword::Between, "BETWEEN"),
        (Keyword::In, "IN"),
        (Keyword::True, "TRUE"),
        (Keyword::False, "FALSE"),
        (Keyword::Null, "NULL"),
        (Keyword::Is, "IS"),
    ];

    fn from_word(word: &str) -> Option<Keyword> {
        Keyword::ALL.iter().find(|(_, name)| word.eq_ignore_ascii_case(name)).map(|(k, _)| *k)
    }

    fn name(self) -> &'static str {
        Keyword::ALL.iter().find(|(k, _)| *k == self).map_or("?", |(_, name)| name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'s> {
    Ident(&'s str),
    Keyword(Keyword),
    /// The text between the quotes, `''` not yet decoded.
    Str(&'s str),
    /// Digits with an optional `l`/`L`.
    Decimal(&'s str),
    Float(&'s str),
    Eq,
    /// `<>` or `!=`.
    NotEq,
    Gt,
    Ge,
    Lt,
    Le,
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    End,
}

impl std::fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let punct = match self {
            Tok::Ident(name) => return write!(f, "identifier `{}`", Shorten(name)),
            Tok::Keyword(k) => return write!(f, "keyword {}", k.name()),
            Tok::Str(raw) => return write!(f, "string '{}'", Shorten(raw)),
            Tok::Decimal(text) | Tok::Float(text) => return write!(f, "number {}", Shorten(text)),
            Tok::End => return f.write_str("end of input"),
            Tok::Eq => "=",
            Tok::NotEq => "<>",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Plus => "+",
            Tok::Minus => "-",
        };
        write!(f, "'{punct}'")
    }
}

/// Shows at most 32 characters of user text in an error message.
struct Shorten<'a>(&'a str);

impl std::fmt::Display for Shorten<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const CHARS_MAX: usize = 32;
        match self.0.char_indices().nth(CHARS_MAX) {
            Some((cut, _)) => write!(f, "{}...", &self.0[..cut]),
            None => f.write_str(self.0),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Token<'s> {
    tok: Tok<'s>,
    /// Byte offset of the token's first character.
    position: usize,
}

fn syntax(position: usize, reason: impl Into<String>) -> Error {
    Error::SqlSyntax { position, reason: reason.into() }
}

fn digits_end(bytes: &[u8], from: usize) -> usize {
    from + bytes.get(from..).map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count())
}

/// Splits the expression into tokens; the last one is [`Tok::End`].
fn lex(src: &str) -> Result<Vec<Token<'_>>, Error> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        let position = i;
        let next = bytes.get(i + 1).copied();
        let tok = match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                i += 1;
                continue;
            }
            b'-' if next == Some(b'-') => {
                i = src[i..].find(['\n', '\r']).map_or(src.len(), |n| i + n);
                continue;
            }
            b'/' if next == Some(b'*') => {
                let close = src[i + 2..].find("*/").ok_or_else(|| syntax(position, "unterminated /* comment"))?;
                i += 2 + close + 2;
                continue;
            }
            b'\'' => {
                let mut j = i + 1;
                loop {
                    let quote = src[j..].find('\'').ok_or_else(|| syntax(position, "unterminated string literal"))?;
                    let k = j + quote;
                    if bytes.get(k + 1) == Some(&b'\'') {
                        j = k + 2;
                    } else {
                        i = k + 1;
                        break Tok::Str(&src[position + 1..k]);
                    }
                }
            }
            b'0'..=b'9' | b'.' => {
                let (tok, end) = lex_number(src, i)?;
                i = end;
                tok
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'$' => {
                let len =
                    bytes[i..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'$').count();
                let word = &src[i..i + len];
                i += len;
                Keyword::from_word(word).map_or(Tok::Ident(word), Tok::Keyword)
            }
            _ => {
                let (tok, len) = match (c, next) {
                    (b'<', Some(b'>')) | (b'!', Some(b'=')) => (Tok::NotEq, 2),
                    (b'<', Some(b'=')) => (Tok::Le, 2),
                    (b'>', Some(b'=')) => (Tok::Ge, 2),
                    (b'<', _) => (Tok::Lt, 1),
                    (b'>', _) => (Tok::Gt, 1),
                    (b'=', _) => (Tok::Eq, 1),
                    (b'(', _) => (Tok::LParen, 1),
                    (b')', _) => (Tok::RParen, 1),
                    (b',', _) => (Tok::Comma, 1),
                    (b'+', _) => (Tok::Plus, 1),
                    (b'-', _) => (Tok::Minus, 1),
                    _ => {
                        let ch = src[i..].chars().next().unwrap_or('?');
                        return Err(syntax(position, format!("unexpected character {ch:?}")));
                    }
                };
                i += len;
                tok
            }
        };
        tokens.push(Token { tok, position });
    }
    tokens.push(Token { tok: Tok::End, position: src.len() });
    Ok(tokens)
}

/// A number starting at `start` (a digit or `.`), by longest match as JavaCC does: `007` is the
/// decimal `0` followed by more tokens, `5e` is `5` and then an identifier.
fn lex_number(src: &str, start: usize) -> Result<(Tok<'_>, usize), Error> {
    let bytes = src.as_bytes();
    let int_end = digits_end(bytes, start);
    let has_int = int_end > start;
    let mut end = int_end;
    let mut float = false;
    if bytes.get(end) == Some(&b'.') {
        let frac_end = digits_end(bytes, end + 1);
        if has_int || frac_end > end + 1 {
            float = true;
            end = frac_end;
        }
    }
    if !has_int && !float {
        return Err(syntax(start, "unexpected character '.'"));
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut k = end + 1;
        if matches!(bytes.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        let exp_end = digits_end(bytes, k);
        if exp_end > k {
            float = true;
            end = exp_end;
        }
    }
    if float {
        return Ok((Tok::Float(&src[start..end]), end));
    }
    if bytes[start] == b'0' {
        return Ok((Tok::Decimal("0"), start + 1));
    }
    if matches!(bytes.get(end), Some(b'l' | b'L')) {
        end += 1;
    }
    Ok((Tok::Decimal(&src[start..end]), end))
}

// ---------------------------------------------------------------------------------------------
// Tree
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(Box<str>),
}

impl Literal {
    fn value(&self) -> Value<'_> {
        match self {
            Literal::Null => Value::Null,
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Int(v) => Value::Int(*v),
            Literal::Long(v) => Value::Long(*v),
            Literal::Double(v) => Value::Double(*v),
            Literal::Str(s) => Value::Str(s),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Relation {
    fn holds(self, ord: Ordering) -> bool {
        match self {
            Relation::Gt => ord == Ordering::Greater,
            Relation::Ge => ord != Ordering::Less,
            Relation::Lt => ord == Ordering::Less,
            Relation::Le => ord != Ordering::Greater,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextOperation {
    Contains,
    StartsWith,
    EndsWith,
}

impl TextOperation {
    fn from_word(word: &str) -> Option<TextOperation> {
        [
            ("CONTAINS", TextOperation::Contains),
            ("STARTSWITH", TextOperation::StartsWith),
            ("ENDSWITH", TextOperation::EndsWith),
        ]
        .into_iter()
        .find(|(name, _)| word.eq_ignore_ascii_case(name))
        .map(|(_, op)| op)
    }

    fn test(self, value: &str, pattern: &str) -> bool {
        match self {
            TextOperation::Contains => value.contains(pattern),
            TextOperation::StartsWith => value.starts_with(pattern),
            TextOperation::EndsWith => value.ends_with(pattern),
        }
    }
}

/// The expression tree. `AND`/`OR` chains are n-ary (evaluated left to right exactly like
/// Java's left-deep pairs), so a long chain does not make the tree deep.
#[derive(Debug, Clone)]
enum Node {
    Literal(Literal),
    Property(Box<str>),
    Negate(Box<Node>),
    Not(Box<Node>),
    /// A property used as a condition (Java's `BooleanCast`).
    BooleanCast(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    /// Java's `doCreateEqual`: `=`, and `IS NULL` against a NULL literal.
    Equal(Box<Node>, Box<Node>),
    Compare(Relation, Box<Node>, Box<Node>),
    /// `values` sorted and without duplicates.
    In {
        property: Box<str>,
        values: Vec<Box<str>>,
        negated: bool,
    },
    Text {
        operation: TextOperation,
        operand: Box<Node>,
        pattern: Box<str>,
        negated: bool,
    },
}

impl Node {
    /// Java's `BooleanExpression`: what may stand where a condition is expected.
    fn is_boolean(&self) -> bool {
        match self {
            Node::Literal(l) => matches!(l, Literal::Null | Literal::Bool(_)),
            Node::Property(_) | Node::Negate(_) => false,
            Node::Not(_)
            | Node::BooleanCast(_)
            | Node::And(_)
            | Node::Or(_)
            | Node::Equal(..)
            | Node::Compare(..)
            | Node::In { .. }
            | Node::Text { .. } => true,
        }
    }

    fn describe(&self) -> String {
        match self {
            Node::Literal(Literal::Null) => "NULL".to_owned(),
            Node::Literal(Literal::Bool(b)) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
            Node::Literal(Literal::Int(v)) => format!("the number {v}"),
            Node::Literal(Literal::Long(v)) => format!("the number {v}"),
            Node::Literal(Literal::Double(v)) => format!("the number {v}"),
            Node::Literal(Literal::Str(s)) => format!("the string '{}'", Shorten(s)),
            Node::Property(name) => format!("property `{}`", Shorten(name)),
            Node::Negate(_) => "a negated value".to_owned(),
            _ => "a condition".to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// A subtree during parsing, with its depth and where it starts (for error messages).
struct Expr {
    node: Node,
    depth: usize,
    position: usize,
}

/// Wraps a node whose deepest child has depth `child_depth`, refusing trees deeper than the limit.
fn expr(node: Node, child_depth: usize, position: usize) -> Result<Expr, Error> {
    let depth = child_depth + 1;
    if depth > SQL_NESTING_DEPTH_MAX {
        return Err(Error::SqlTooDeep { position, depth_max: SQL_NESTING_DEPTH_MAX });
    }
    Ok(Expr { node, depth, position })
}

fn leaf(node: Node, position: usize) -> Expr {
    Expr { node, depth: 1, position }
}

/// Java's `asBooleanExpression`: a condition stays, a property is cast, anything else is refused.
fn as_boolean(e: Expr) -> Result<Expr, Error> {
    if e.node.is_boolean() {
        return Ok(e);
    }
    if matches!(e.node, Node::Property(_)) {
        return expr(Node::BooleanCast(Box::new(e.node)), e.depth, e.position);
    }
    Err(syntax(e.position, format!("{} is not a condition", e.node.describe())))
}

/// Java's `checkLessThanOperand`: only numbers, properties and negations can be ordered.
fn check_orderable(e: &Expr, operator: &str) -> Result<(), Error> {
    let orderable = match &e.node {
        Node::Literal(l) => matches!(l, Literal::Int(_) | Literal::Long(_) | Literal::Double(_)),
        node => !node.is_boolean(),
    };
    if orderable {
        Ok(())
    } else {
        Err(syntax(e.position, format!("{} cannot be compared with {operator}", e.node.describe())))
    }
}

/// Java's `checkEqualOperand` and `checkEqualOperandCompatability` for `=` and `<>`.
fn check_equal(left: &Expr, right: &Expr, operator: &str) -> Result<(), Error> {
    for side in [left, right] {
        if matches!(side.node, Node::Literal(Literal::Null)) {
            return Err(syntax(side.position, format!("NULL cannot be compared with {operator}; use IS NULL")));
        }
    }
    if let (Node::Literal(l), Node::Literal(r)) = (&left.node, &right.node) {
        let boolean = |x: &Literal| matches!(x, Literal::Null | Literal::Bool(_));
        if boolean(l) && !boolean(r) {
            return Err(syntax(
                left.position,
                format!("{} cannot be compared with {}", left.node.describe(), right.node.describe()),
            ));
        }
    }
    Ok(())
}

fn decode_string(raw: &str) -> Box<str> {
    raw.replace("''", "'").into_boxed_str()
}

fn decimal_literal(text: &str, position: usize) -> Result<Literal, Error> {
    let digits = text.strip_suffix(['l', 'L']).unwrap_or(text);
    let value: i64 =
        digits.parse().map_err(|_| syntax(position, format!("integer {} is out of the long range", Shorten(text))))?;
    Ok(i32::try_from(value).map_or(Literal::Long(value), Literal::Int))
}

fn float_literal(text: &str, position: usize) -> Result<Literal, Error> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Literal::Double(v)),
        _ => Err(syntax(position, format!("number {} is out of the double range", Shorten(text)))),
    }
}

struct Parser<'s> {
    tokens: Vec<Token<'s>>,
    next: usize,
    /// Current recursion depth (parentheses and prefix operators).
    depth: usize,
}

impl<'s> Parser<'s> {
    fn peek(&self) -> Tok<'s> {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> Tok<'s> {
        self.tokens.get(self.next + ahead).map_or(Tok::End, |t| t.tok)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.next).or(self.tokens.last()).map_or(0, |t| t.position)
    }

    fn advance(&mut self) -> Token<'s> {
        let token = self.tokens.get(self.next).or(self.tokens.last()).copied();
        if self.next < self.tokens.len() {
            self.next += 1;
        }
        token.unwrap_or(Token { tok: Tok::End, position: 0 })
    }

    fn expect(&mut self, tok: Tok<'_>, what: &str) -> Result<Token<'s>, Error> {
        let token = self.advance();
        if token.tok == tok {
            Ok(token)
        } else {
            Err(syntax(token.position, format!("expected {what}, found {}", token.tok)))
        }
    }

    fn expect_string(&mut self, after: &str) -> Result<Box<str>, Error> {
        let token = self.advance();
        match token.tok {
            Tok::Str(raw) => Ok(decode_string(raw)),
            other => Err(syntax(token.position, format!("expected a string literal after {after}, found {other}"))),
        }
    }

    /// Runs `f` one recursion level deeper, refusing to go past the limit.
    fn nested(&mut self, position: usize, f: impl FnOnce(&mut Self) -> Result<Expr, Error>) -> Result<Expr, Error> {
        if self.depth >= SQL_NESTING_DEPTH_MAX {
            return Err(Error::SqlTooDeep { position, depth_max: SQL_NESTING_DEPTH_MAX });
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn parse_or(&mut self) -> Result<Expr, Error> {
        self.parse_chain(Keyword::Or, Self::parse_and, Node::Or)
    }

    fn parse_and(&mut self) -> Result<Expr, Error> {
        self.parse_chain(Keyword::And, Self::parse_equality, Node::And)
    }

    fn parse_chain(
        &mut self,
        keyword: Keyword,
        operand: fn(&mut Self) -> Result<Expr, Error>,
        make: fn(Vec<Node>) -> Node,
    ) -> Result<Expr, Error> {
        let first = operand(self)?;
        if self.peek() != Tok::Keyword(keyword) {
            return Ok(first);
        }
        let position = first.position;
        let first = as_boolean(first)?;
        let mut depth = first.depth;
        let mut children = vec![first.node];
        while self.peek() == Tok::Keyword(keyword) {
            self.advance();
            let next = as_boolean(operand(self)?)?;
            depth = depth.max(next.depth);
            children.push(next.node);
        }
        expr(make(children), depth, position)
    }

    fn parse_equality(&mut self) -> Result<Expr, Error> {
        let mut left = self.parse_comparison()?;
        loop {
            let position = self.position();
            left = match self.peek() {
                Tok::Eq | Tok::NotEq => {
                    let negated = self.advance().tok == Tok::NotEq;
                    let right = self.parse_comparison()?;
                    check_equal(&left, &right, if negated { "<>" } else { "=" })?;
                    let depth = left.depth.max(right.depth);
                    let equal = expr(Node::Equal(Box::new(left.node), Box::new(right.node)), depth, left.position)?;
                    if negated { expr(Node::Not(Box::new(equal.node)), equal.depth, position)? } else { equal }
                }
                Tok::Keyword(Keyword::Is) => {
                    self.advance();
                    let negated = self.peek() == Tok::Keyword(Keyword::Not);
                    if negated {
                        self.advance();
                    }
                    self.expect(Tok::Keyword(Keyword::Null), "NULL or NOT NULL after IS")?;
                    let null = Box::new(Node::Literal(Literal::Null));
                    let equal = expr(Node::Equal(Box::new(left.node), null), left.depth, left.position)?;
                    if negated { expr(Node::Not(Box::new(equal.node)), equal.depth, position)? } else { equal }
                }
                _ => return Ok(left),
            };
        }
    }

    fn parse_comparison(&mut self) -> Result<Expr, Error> {
        let mut left = self.parse_unary()?;
        loop {
            let (negated, operator) = match (self.peek(), self.peek_at(1)) {
                (Tok::Keyword(Keyword::Not), op @ (Tok::Keyword(Keyword::Between | Keyword::In) | Tok::Ident(_))) => {
                    (true, op)
                }
                (op, _) => (false, op),
            };
            let position = self.position();
            left = match operator {
                Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le => {
                    let relation = match self.advance().tok {
                        Tok::Gt => Relation::Gt,
                        Tok::Ge => Relation::Ge,
                        Tok::Lt => Relation::Lt,
                        _ => Relation::Le,
                    };
                    let right = self.parse_unary()?;
                    compare(relation, left, right)?
                }
                Tok::Keyword(Keyword::Between) => {
                    self.advance_operator(negated);
                    self.parse_between(left, negated)?
                }
                Tok::Keyword(Keyword::In) => {
                    self.advance_operator(negated);
                    self.parse_in(left, negated, position)?
                }
                Tok::Ident(word) => match TextOperation::from_word(word) {
                    Some(operation) => {
                        self.advance_operator(negated);
                        let pattern = self.expect_string(&word.to_ascii_uppercase())?;
                        let depth = left.depth;
                        let operand = Box::new(left.node);
                        expr(Node::Text { operation, operand, pattern, negated }, depth, left.position)?
                    }
                    None => return Ok(left),
                },
                _ => return Ok(left),
            };
        }
    }

    /// Skips an operator and the `NOT` before it.
    fn advance_operator(&mut self, negated: bool) {
        if negated {
            self.advance();
        }
        self.advance();
    }

    fn parse_between(&mut self, value: Expr, negated: bool) -> Result<Expr, Error> {
        let low = self.parse_unary()?;
        self.expect(Tok::Keyword(Keyword::And), "AND between the bounds of BETWEEN")?;
        let high = self.parse_unary()?;
        let position = value.position;
        let copy = Expr { node: value.node.clone(), depth: value.depth, position };
        let (first, second) = if negated {
            (compare(Relation::Lt, value, low)?, compare(Relation::Gt, copy, high)?)
        } else {
            if let (Node::Literal(l), Node::Literal(h)) = (&low.node, &high.node) {
                if matches!(l, Literal::Null) || matches!(h, Literal::Null) {
                    return Err(syntax(low.position, "the bounds of BETWEEN cannot be NULL"));
                }
                match java_compare(h.value(), l.value()) {
                    Ok(Ordering::Less) => {
                        return Err(syntax(
                            low.position,
                            format!("BETWEEN needs {} <= {}", low.node.describe(), high.node.describe()),
                        ));
                    }
                    Ok(_) => {}
                    Err(Abort) => return Err(syntax(low.position, "the bounds of BETWEEN cannot be compared")),
                }
            }
            (compare(Relation::Ge, value, low)?, compare(Relation::Le, copy, high)?)
        };
        let depth = first.depth.max(second.depth);
        let pair = vec![first.node, second.node];
        expr(if negated { Node::Or(pair) } else { Node::And(pair) }, depth, position)
    }

    fn parse_in(&mut self, left: Expr, negated: bool, position: usize) -> Result<Expr, Error> {
        self.expect(Tok::LParen, "'(' after IN")?;
        let mut values = vec![self.expect_string("IN (")?];
        while self.expect_list_separator()? {
            values.push(self.expect_string("','")?);
        }
        let Node::Property(property) = left.node else {
            return Err(syntax(position, format!("IN needs a property on its left, not {}", left.node.describe())));
        };
        values.sort_unstable();
        values.dedup();
        Ok(leaf(Node::In { property, values, negated }, left.position))
    }

    /// After a list element: `true` on `,`, `false` on `)`.
    fn expect_list_separator(&mut self) -> Result<bool, Error> {
        let token = self.advance();
        match token.tok {
            Tok::Comma => Ok(true),
            Tok::RParen => Ok(false),
            other => Err(syntax(token.position, format!("expected ',' or ')' in the IN list, found {other}"))),
        }
    }

    fn parse_unary(&mut self) -> Result<Expr, Error> {
        let position = self.position();
        match self.peek() {
            Tok::Plus => {
                self.advance();
                self.nested(position, Self::parse_unary)
            }
            Tok::Minus => {
                self.advance();
                let operand = self.nested(position, Self::parse_unary)?;
                expr(Node::Negate(Box::new(operand.node)), operand.depth, position)
            }
            Tok::Keyword(Keyword::Not) => {
                self.advance();
                let operand = as_boolean(self.nested(position, Self::parse_unary)?)?;
                expr(Node::Not(Box::new(operand.node)), operand.depth, position)
            }
            _ => self.parse_primary(),
        }
    }

    fn parse_primary(&mut self) -> Result<Expr, Error> {
        let token = self.advance();
        let position = token.position;
        let literal = match token.tok {
            Tok::Str(raw) => Literal::Str(decode_string(raw)),
            Tok::Decimal(text) => decimal_literal(text, position)?,
            Tok::Float(text) => float_literal(text, position)?,
            Tok::Keyword(Keyword::True) => Literal::Bool(true),
            Tok::Keyword(Keyword::False) => Literal::Bool(false),
            Tok::Keyword(Keyword::Null) => Literal::Null,
            Tok::Ident(name) => return Ok(leaf(Node::Property(name.into()), position)),
            Tok::LParen => {
                let inner = self.nested(position, Self::parse_or)?;
                self.expect(Tok::RParen, "')'")?;
                return Ok(inner);
            }
            other => return Err(syntax(position, format!("expected a value, a property or '(', found {other}"))),
        };
        Ok(leaf(Node::Literal(literal), position))
    }
}

/// Java's `createGreaterThan` and friends.
fn compare(relation: Relation, left: Expr, right: Expr) -> Result<Expr, Error> {
    let operator = match relation {
        Relation::Gt => ">",
        Relation::Ge => ">=",
        Relation::Lt => "<",
        Relation::Le => "<=",
    };
    check_orderable(&left, operator)?;
    check_orderable(&right, operator)?;
    let depth = left.depth.max(right.depth);
    expr(Node::Compare(relation, Box::new(left.node), Box::new(right.node)), depth, left.position)
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// A value during evaluation; strings borrow from the tree or from the message.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(&'a str),
}

/// Where the Java evaluator throws: the expression fails and the message does not match.
#[derive(Debug)]
struct Abort;

fn eval<'a, P: Properties + ?Sized>(node: &'a Node, properties: &'a P) -> Result<Value<'a>, Abort> {
    Ok(match node {
        Node::Literal(literal) => literal.value(),
        Node::Property(name) => properties.property(name).map_or(Value::Null, Value::Str),
        Node::Negate(operand) => match eval(operand, properties)? {
            Value::Int(v) => Value::Int(v.wrapping_neg()),
            Value::Long(v) => Value::Long(v.wrapping_neg()),
            Value::Double(v) => Value::Double(-v),
            _ => Value::Null,
        },
        Node::Not(operand) => match eval(operand, properties)? {
            Value::Bool(b) => Value::Bool(!b),
            Value::Null => Value::Null,
            _ => return Err(Abort),
        },
        Node::BooleanCast(operand) => match eval(operand, properties)? {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            _ => Value::Bool(false),
        },
        Node::And(children) => {
            let mut unknown = false;
            for child in children {
                match eval(child, properties)? {
                    Value::Bool(false) => return Ok(Value::Bool(false)),
                    Value::Bool(true) => {}
                    Value::Null => unknown = true,
                    _ => return Err(Abort),
                }
            }
            if unknown { Value::Null } else { Value::Bool(true) }
        }
        Node::Or(children) => {
            let mut unknown = false;
            for child in children {
                match eval(child, properties)? {
                    Value::Bool(true) => return Ok(Value::Bool(true)),
                    Value::Bool(false) => {}
                    Value::Null => unknown = true,
                    _ => return Err(Abort),
                }
            }
            if unknown { Value::Null } else { Value::Bool(false) }
        }
        Node::Equal(left, right) => {
            let lv = eval(left, properties)?;
            let rv = eval(right, properties)?;
            match (lv, rv) {
                (Value::Null, Value::Null) => Value::Bool(true),
                (Value::Null, _) => Value::Null,
                (_, Value::Null) => Value::Bool(false),
                (lv, rv) => Value::Bool(java_compare(lv, rv)? == Ordering::Equal),
            }
        }
        Node::Compare(relation, left, right) => {
            let lv = eval(left, properties)?;
            if matches!(lv, Value::Null) {
                return Ok(Value::Null);
            }
            let rv = eval(right, properties)?;
            let ordering = match (lv, rv) {
                (_, Value::Null) => return Ok(Value::Null),
                (Value::Str(a), Value::Str(b)) => java_double_cmp(java_double(a)?, java_double(b)?),
                (lv, rv) => java_compare(lv, rv)?,
            };
            Value::Bool(relation.holds(ordering))
        }
        Node::In { property, values, negated } => match properties.property(property) {
            None => Value::Null,
            Some(v) => Value::Bool(values.binary_search_by(|x| (**x).cmp(v)).is_ok() != *negated),
        },
        Node::Text { operation, operand, pattern, negated } => {
            if pattern.is_empty() {
                return Ok(Value::Bool(false));
            }
            match eval(operand, properties)? {
                Value::Str(s) => Value::Bool(operation.test(s, pattern) != *negated),
                _ => Value::Bool(false),
            }
        }
    })
}

/// Java's `ComparisonExpression.__compare` with string conversion on: values of different types
/// are converted towards each other; a string that does not parse fails the expression.
fn java_compare(l: Value<'_>, r: Value<'_>) -> Result<Ordering, Abort> {
    use Value::{Bool, Double, Int, Long, Null, Str};
    Ok(match (l, r) {
        (Bool(a), Bool(b)) => a.cmp(&b),
        (Int(a), Int(b)) => a.cmp(&b),
        (Long(a), Long(b)) => a.cmp(&b),
        (Double(a), Double(b)) => java_double_cmp(a, b),
        (Str(a), Str(b)) => a.encode_utf16().cmp(b.encode_utf16()),
        // Java casts the Boolean to String here: a ClassCastException.
        (Bool(_), Str(_)) => return Err(Abort),
        (Int(a), Long(b)) => i64::from(a).cmp(&b),
        (Int(a), Double(b)) => java_double_cmp(f64::from(a), b),
        (Int(a), Str(b)) => a.cmp(&b.parse::<i32>().map_err(|_| Abort)?),
        (Long(a), Int(b)) => a.cmp(&i64::from(b)),
        (Long(a), Double(b)) => java_double_cmp(a as f64, b),
        (Long(a), Str(b)) => a.cmp(&b.parse::<i64>().map_err(|_| Abort)?),
        (Double(a), Int(b)) => java_double_cmp(a, f64::from(b)),
        (Double(a), Long(b)) => java_double_cmp(a, b as f64),
        (Double(a), Str(b)) => java_double_cmp(a, java_double(b)?),
        (Str(a), Bool(b)) => a.eq_ignore_ascii_case("true").cmp(&b),
        (Str(a), Int(b)) => a.parse::<i32>().map_err(|_| Abort)?.cmp(&b),
        (Str(a), Long(b)) => a.parse::<i64>().map_err(|_| Abort)?.cmp(&b),
        (Str(a), Double(b)) => java_double_cmp(java_double(a)?, b),
        // Callers rule NULL out; Java would throw.
        (Null, _) | (_, Null) => return Err(Abort),
        // A number against a boolean: Java answers -1.
        (Bool(_) | Int(_) | Long(_) | Double(_), _) => Ordering::Less,
    })
}

/// `Double.compareTo`: numeric order, then `-0.0 < 0.0` and NaN above everything, equal to itself.
fn java_double_cmp(a: f64, b: f64) -> Ordering {
    if a < b {
        return Ordering::Less;
    }
    if a > b {
        return Ordering::Greater;
    }
    let bits = |v: f64| if v.is_nan() { 0x7ff8_0000_0000_0000_i64 } else { v.to_bits() as i64 };
    bits(a).cmp(&bits(b))
}

/// `Double.valueOf(String)`: surrounding ASCII control characters and spaces are ignored, then an
/// optional sign and `NaN`, `Infinity` or a decimal number with an optional `f`/`d` suffix.
fn java_double(text: &str) -> Result<f64, Abort> {
    let text = text.trim_matches(|c: char| c <= ' ');
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let negative = text.starts_with('-');
    match unsigned {
        "NaN" => return Ok(f64::NAN),
        "Infinity" => return Ok(if negative { f64::NEG_INFINITY } else { f64::INFINITY }),
        _ => {}
    }
    let number = text.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(text);
    let digits = &number[text.len() - unsigned.len()..];
    let bytes = digits.as_bytes();
    let int_end = digits_end(bytes, 0);
    let mut end = int_end;
    let mut frac_digits = 0;
    if bytes.get(end) == Some(&b'.') {
        let frac_end = digits_end(bytes, end + 1);
        frac_digits = frac_end - end - 1;
        end = frac_end;
    }
    if int_end == 0 && frac_digits == 0 {
        return Err(Abort);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut k = end + 1;
        if matches!(bytes.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        end = digits_end(bytes, k);
        if end == k {
            return Err(Abort);
        }
    }
    if end != bytes.len() {
        return Err(Abort);
    }
    number.parse::<f64>().map_err(|_| Abort)
}
