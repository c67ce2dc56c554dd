//! A SQL92 property filter with RocketMQ's grammar, as a plugin.
//!
//! Parameters:
//! * `expression`: the condition over message properties (user properties and system ones such
//!   as `TAGS` and `KEYS`), e.g. `region = 'eu' AND amount BETWEEN 10 AND 100`.
//! * `tags` (optional): `TagA || TagB`; checked first over the tags hash codes (the prefilter,
//!   without reading the message), then exactly.
//!
//! At least one of the two is required. The grammar is RocketMQ's (`SelectorParser.jj`):
//! `AND`, `OR`, `NOT`, parentheses; `=`, `<>`, `>`, `>=`, `<`, `<=`; `IS [NOT] NULL`;
//! `[NOT] BETWEEN a AND b`; `[NOT] IN ('a', 'b')`; `[NOT] CONTAINS|STARTSWITH|ENDSWITH 'x'`;
//! integer (optional `L`), decimal and exponent literals, `'strings'` (`''` escapes a quote),
//! `TRUE`, `FALSE`, `NULL`. Keywords are case-insensitive. A missing property is NULL, and a
//! comparison with NULL is not a match. Ordering two strings that are not both numbers is an
//! error: that message is not delivered and is counted as an error.

mod sql;

use rocketmq_plugin_sdk::{Filter, Message, Needs, Params, export_filter};

pub use sql::{Expr, Lit, Program, SLOTS_INLINE_MAX, Value, parse};

pub struct Sql92Filter {
    expr: Option<Program>,
    /// (hash code, tag) of the wanted tags.
    tags: Vec<(i64, String)>,
}

/// Java's `String.hashCode`, as RocketMQ stores tags hash codes.
pub fn java_hash(s: &str) -> i64 {
    let mut h: i32 = 0;
    for u in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(u as i32);
    }
    h as i64
}

impl Sql92Filter {
    pub fn new(params: &Params) -> Result<Sql92Filter, String> {
        let expr = match params.get("expression").map(str::trim) {
            Some(e) if !e.is_empty() => Some(Program::compile(parse(e)?)),
            _ => None,
        };
        let tags: Vec<(i64, String)> = params
            .get("tags")
            .unwrap_or("")
            .split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "*")
            .map(|t| (java_hash(t), t.to_owned()))
            .collect();
        if expr.is_none() && tags.is_empty() {
            return Err("give an `expression` and/or `tags`".into());
        }
        Ok(Sql92Filter { expr, tags })
    }

    fn tags_match(&self, tags: Option<&str>) -> bool {
        self.tags.is_empty() || tags.is_some_and(|t| self.tags.iter().any(|(_, w)| w == t))
    }

    /// The full match on one message's accessors.
    pub fn eval<'a>(&self, tags: Option<&str>, prop: impl Fn(&str) -> Option<&'a str>) -> Result<bool, String> {
        if !self.tags_match(tags) {
            return Ok(false);
        }
        match &self.expr {
            Some(p) => p.matches(prop),
            None => Ok(true),
        }
    }
}

impl Filter for Sql92Filter {
    const NAME: &'static str = "sql92-filter";
    const NEEDS: Needs = Needs { topic: false, tags: true, keys: false, properties: true, body: false };
    const HAS_PREFILTER: bool = true;

    fn create(params: &Params) -> Result<Self, String> {
        Sql92Filter::new(params)
    }

    fn prefilter(&self, tags_code: i64) -> bool {
        self.tags.is_empty() || self.tags.iter().any(|(h, _)| *h == tags_code)
    }

    /// Only a `tags` parameter gives the prefilter something to drop.
    fn prefilters(&self) -> bool {
        !self.tags.is_empty()
    }

    fn matches(&self, msg: &Message<'_>) -> Result<bool, String> {
        if !self.tags_match(msg.tags()) {
            return Ok(false);
        }
        let Some(p) = &self.expr else { return Ok(true) };
        // Every property the expression reads, found in one pass over the message's properties.
        let names = p.names();
        let mut inline = [None; SLOTS_INLINE_MAX];
        if names.len() <= SLOTS_INLINE_MAX {
            let slots = &mut inline[..names.len()];
            msg.properties_into(names, slots);
            p.matches_slots(slots)
        } else {
            let mut slots = vec![None; names.len()];
            msg.properties_into(names, &mut slots);
            p.matches_slots(&slots)
        }
    }
}

export_filter!(Sql92Filter);

#[cfg(test)]
mod tests {
    use rocketmq_plugin_sdk::testing::{TestMessage, filter, params};

    use super::Sql92Filter;

    #[test]
    fn tags_then_expression() {
        let msgs = [
            TestMessage::new().tags("TagA").property("a", "7"),
            TestMessage::new().tags("TagB").property("a", "7"),
            TestMessage::new().tags("TagA").property("a", "1"),
            TestMessage::new().property("a", "9"),
        ];
        let got = filter::<Sql92Filter>(&params(&[("tags", "TagA || TagC"), ("expression", "a > 5")]), &msgs);
        assert_eq!(got, vec![Ok(true), Ok(false), Ok(false), Ok(false)]);
        let got = filter::<Sql92Filter>(&params(&[("expression", "a BETWEEN 6 AND 9 AND TAGS IS NULL")]), &msgs);
        assert_eq!(got, vec![Ok(false), Ok(false), Ok(false), Ok(true)]);
    }

    #[test]
    fn one_pass_lookup_matches_per_name_lookup() {
        let msgs = [
            TestMessage::new().tags("TagA").property("a", "7").property("b", "x").property("a", "1"),
            TestMessage::new().property("b", "y").property("region", "eu"),
            TestMessage::new().property("a", " 12 ").property("region", "eu"),
        ];
        // `a` read twice is one slot; the first `a` stored wins; TAGS is a property.
        let expr = "(a > 5 AND a < 10 AND TAGS = 'TagA') OR (region = 'eu' AND (a IS NULL OR a = 12))";
        let got = filter::<Sql92Filter>(&params(&[("expression", expr)]), &msgs);
        assert_eq!(got, vec![Ok(true), Ok(true), Ok(true)]);
        let program = super::Program::compile(super::parse(expr).expect("parses"));
        assert_eq!(program.names(), ["a", "TAGS", "region"]);
    }

    #[test]
    fn more_properties_than_inline_slots() {
        let names: Vec<String> = (0..super::SLOTS_INLINE_MAX + 4).map(|i| format!("p{i}")).collect();
        let expr = names.iter().map(|n| format!("{n} = '{n}'")).collect::<Vec<_>>().join(" AND ");
        let all = names.iter().fold(TestMessage::new(), |m, n| m.property(n, n));
        let missing_last = names[..names.len() - 1].iter().fold(TestMessage::new(), |m, n| m.property(n, n));
        let got = filter::<Sql92Filter>(&params(&[("expression", &expr)]), &[all, missing_last]);
        assert_eq!(got, vec![Ok(true), Ok(false)]);
    }
}
