//! Message filters of PULL_MESSAGE: tag expressions and SQL92 property expressions (RocketMQ 4.9.4).
//!
//! A consumer subscribes with an expression type (`TAG`, the default, or `SQL92`) and an
//! expression. [`Subscription::parse`] turns both into a filter once per subscription; the pull
//! path then asks it twice per message, as the Java broker does:
//!
//! 1. [`Subscription::matches_tags_code`] on the ConsumeQueue unit's tags code (the prefilter; an
//!    SQL92 subscription passes everything here, 4.9.4 without bloom-filter bitmaps does the same);
//! 2. [`Subscription::matches_message`] on the message's tag and properties, read from the
//!    CommitLog record.
//!
//! Evaluation does not allocate: properties are looked up through [`Properties`] (implemented
//! for maps, pair slices, the stored `key\x01value\x02` string and closures), and every value the
//! evaluator handles borrows from the expression or from the message.
//!
//! # Limits
//!
//! | limit | value | why |
//! |---|---|---|
//! | [`SQL_EXPRESSION_BYTES_MAX`] | 4,096 bytes | bounds parse time and the tree's size |
//! | [`SQL_NESTING_DEPTH_MAX`] | 64 levels | bounds parser, evaluator and `Drop` recursion |
//!
//! Both are checked before the work they bound, so hostile input cannot exhaust the stack.

mod sql92;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::marker::PhantomData;

pub use crate::store::format::java_string_hash;
pub use sql92::SqlFilter;

/// Longest SQL92 expression accepted, in bytes (Java has no limit; a pull request's frame does).
pub const SQL_EXPRESSION_BYTES_MAX: usize = 4096;

/// Deepest nesting accepted in an SQL92 expression: parentheses, prefix operators and the depth
/// of the resulting tree each count one level.
pub const SQL_NESTING_DEPTH_MAX: usize = 64;

/// The expression type of a tag subscription (`ExpressionType.TAG`).
pub const EXPRESSION_TYPE_TAG: &str = "TAG";

/// The expression type of an SQL92 subscription (`ExpressionType.SQL92`).
pub const EXPRESSION_TYPE_SQL92: &str = "SQL92";

/// The subscription expression that selects every message (`SubscriptionData.SUB_ALL`).
pub const SUB_ALL: &str = "*";

/// The property that holds a message's tag (`MessageConst.PROPERTY_TAGS`).
pub const PROPERTY_TAGS: &str = "TAGS";

/// What evaluates SQL92 subscriptions (`sqlFilterEngine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqlFilterEngine {
    /// [`SqlFilter`], in the broker.
    #[default]
    Builtin,
    /// The SQL92 Wasm plugin (`plugins/sql92-filter`, the component at `sqlFilterPlugin`):
    /// one instance per distinct expression, failing closed (`crate::plugin::Plugins::filter_sql`).
    Plugin,
}

impl SqlFilterEngine {
    /// The config value: `builtin` or `plugin`.
    pub fn name(self) -> &'static str {
        match self {
            SqlFilterEngine::Builtin => "builtin",
            SqlFilterEngine::Plugin => "plugin",
        }
    }
}

/// Why a subscription expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("SQL92 expression of {bytes} bytes exceeds the limit of {bytes_max} bytes")]
    SqlTooLong { bytes: usize, bytes_max: usize },
    #[error("SQL92 expression nests deeper than {depth_max} levels at byte {position}")]
    SqlTooDeep { position: usize, depth_max: usize },
    #[error("invalid SQL92 expression at byte {position}: {reason}")]
    SqlSyntax { position: usize, reason: String },
    #[error("unsupported expression type {0:?} (expected \"TAG\" or \"SQL92\")")]
    UnsupportedExpressionType(String),
}

/// Message properties looked up by name, borrowed (never copied) by the SQL92 evaluator.
pub trait Properties {
    /// The value of property `name`, if the message has it.
    fn property(&self, name: &str) -> Option<&str>;
}

impl<S: BuildHasher> Properties for HashMap<String, String, S> {
    fn property(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Properties for BTreeMap<String, String> {
    fn property(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// Pairs in a slice; the first pair with the name wins.
impl<K: AsRef<str>, V: AsRef<str>> Properties for [(K, V)] {
    fn property(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| k.as_ref() == name).map(|(_, v)| v.as_ref())
    }
}

/// The properties string of a stored record (`key\x01value\x02...`), read in place with
/// [`crate::store::format::property`].
#[derive(Debug, Clone, Copy)]
pub struct EncodedProperties<'a>(pub &'a str);

impl Properties for EncodedProperties<'_> {
    fn property(&self, name: &str) -> Option<&str> {
        crate::store::format::property(self.0, name)
    }
}

/// A lookup closure as [`Properties`]: `PropertyFn::new(|name| map.get(name).map(String::as_str))`.
pub struct PropertyFn<'v, F> {
    lookup: F,
    values: PhantomData<&'v str>,
}

impl<'v, F: Fn(&str) -> Option<&'v str>> PropertyFn<'v, F> {
    pub fn new(lookup: F) -> Self {
        PropertyFn { lookup, values: PhantomData }
    }
}

impl<'v, F: Fn(&str) -> Option<&'v str>> Properties for PropertyFn<'v, F> {
    fn property(&self, name: &str) -> Option<&str> {
        (self.lookup)(name)
    }
}

/// A message's properties with its tag visible as `TAGS` when the properties lack it.
struct WithTags<'a, P: ?Sized> {
    properties: &'a P,
    tags: Option<&'a str>,
}

impl<P: Properties + ?Sized> Properties for WithTags<'_, P> {
    fn property(&self, name: &str) -> Option<&str> {
        let found = self.properties.property(name);
        if found.is_none() && name == PROPERTY_TAGS { self.tags } else { found }
    }
}

/// A tag subscription (`TagA || TagB`), as 4.9.4's `FilterAPI.buildSubscriptionData` builds it.
///
/// The expression is split on `||`; each part is trimmed of ASCII control characters and spaces
/// (Java's `String.trim`) and dropped when empty. `*` or an empty expression selects everything.
/// An expression whose parts are all empty (`"||"`, `" "`) selects nothing, as in Java.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    /// `*` or empty: every message matches, whatever its tag.
    pub all: bool,
    /// The tags, without duplicates, in expression order.
    pub tags: Vec<String>,
    /// `java_string_hash` of each tag, without duplicates: what ConsumeQueue units store.
    pub code_set: Vec<i32>,
}

impl TagFilter {
    /// Builds the filter of a tag expression. Never fails: any string is a tag expression.
    pub fn parse(expr: &str) -> TagFilter {
        let mut filter = TagFilter { all: expr.is_empty() || expr == SUB_ALL, tags: Vec::new(), code_set: Vec::new() };
        if filter.all {
            return filter;
        }
        for part in expr.split("||") {
            let tag = part.trim_matches(|c: char| c <= ' ');
            if tag.is_empty() || filter.tags.iter().any(|t| t == tag) {
                continue;
            }
            let code = java_string_hash(tag);
            if !filter.code_set.contains(&code) {
                filter.code_set.push(code);
            }
            filter.tags.push(tag.to_owned());
        }
        filter
    }

    /// The ConsumeQueue prefilter: the unit's tags code, as a Java `int`, is one of the tags'
    /// hashes. Hash collisions pass; [`TagFilter::matches_tag`] settles them.
    pub fn matches_tags_code(&self, tags_code: i64) -> bool {
        self.all || self.code_set.contains(&(tags_code as i32))
    }

    /// The message's tag is one of the tags; a message without a tag matches only `*`.
    pub fn matches_tag(&self, tag: Option<&str>) -> bool {
        self.all || tag.is_some_and(|t| self.tags.iter().any(|s| s == t))
    }
}

/// A parsed subscription: what one consumer group wants from one topic.
#[derive(Debug, Clone)]
pub enum Subscription {
    /// `*` or an empty tag expression.
    All,
    Tags(TagFilter),
    Sql(SqlFilter),
}

impl Subscription {
    /// Parses `expr` as `expression_type` says: `None`, `""` or `"TAG"` is a tag expression,
    /// `"SQL92"` an SQL92 expression (names are case-sensitive, as in Java's `ExpressionType`).
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedExpressionType`] for another type; for SQL92 whatever
    /// [`SqlFilter::parse`] returns.
    pub fn parse(expression_type: Option<&str>, expr: &str) -> Result<Subscription, Error> {
        match expression_type {
            None | Some("" | EXPRESSION_TYPE_TAG) => {
                let filter = TagFilter::parse(expr);
                Ok(if filter.all { Subscription::All } else { Subscription::Tags(filter) })
            }
            Some(EXPRESSION_TYPE_SQL92) => SqlFilter::parse(expr).map(Subscription::Sql),
            Some(other) => Err(Error::UnsupportedExpressionType(other.to_owned())),
        }
    }

    /// The ConsumeQueue prefilter on a unit's tags code. SQL92 passes everything here.
    pub fn matches_tags_code(&self, tags_code: i64) -> bool {
        match self {
            Subscription::All | Subscription::Sql(_) => true,
            Subscription::Tags(filter) => filter.matches_tags_code(tags_code),
        }
    }

    /// The filter on the message itself: its tag for a tag subscription (which the Java broker
    /// leaves to the client, with the same outcome), its properties for SQL92, where `TAGS` falls
    /// back to `tags` when the properties lack it.
    pub fn matches_message<P: Properties + ?Sized>(&self, tags: Option<&str>, properties: &P) -> bool {
        match self {
            Subscription::All => true,
            Subscription::Tags(filter) => filter.matches_tag(tags),
            Subscription::Sql(filter) => filter.matches(&WithTags { properties, tags }),
        }
    }
}
