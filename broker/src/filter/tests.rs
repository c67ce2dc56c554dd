//! Unit tests of the filter module: tag expressions and hashes, every SQL92 operator against
//! tables of properties, null semantics, parse errors with positions, the limits, and fixed-seed
//! fuzz loops over random bytes and random token soups.

use std::collections::{BTreeMap, HashMap};

use super::*;

/// The three-valued result, or `Err(())` where Java's evaluator throws.
type Outcome = Result<Option<bool>, ()>;
const T: Outcome = Ok(Some(true));
const F: Outcome = Ok(Some(false));
const N: Outcome = Ok(None);
const X: Outcome = Err(());

type Props<'a> = &'a [(&'a str, &'a str)];

fn parse(expr: &str) -> SqlFilter {
    SqlFilter::parse(expr).unwrap_or_else(|e| panic!("{expr:?} should parse: {e}"))
}

/// Each row: expression, then (properties, expected outcome) pairs.
fn check_eval(rows: &[(&str, &[(Props<'_>, Outcome)])]) {
    let mut failures = Vec::new();
    for (expr, cases) in rows {
        let filter = parse(expr);
        for (props, want) in cases.iter() {
            let got = filter.evaluate(*props);
            if got != *want {
                failures.push(format!("{expr:?} with {props:?}: got {got:?}, want {want:?}"));
            }
            assert_eq!(filter.matches(*props), *want == T, "{expr:?} with {props:?}");
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// Each row: expression, byte position, a fragment of the reason.
fn check_errors(rows: &[(&str, usize, &str)]) {
    let mut failures = Vec::new();
    for (expr, position, fragment) in rows {
        match SqlFilter::parse(expr) {
            Err(Error::SqlSyntax { position: p, reason }) if p == *position && reason.contains(fragment) => {}
            other => failures.push(format!("{expr:?}: got {other:?}, want position {position} and {fragment:?}")),
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Tags
// ---------------------------------------------------------------------------------------------

#[test]
fn java_string_hash_matches_java() {
    let rows: &[(&str, i32)] = &[
        ("", 0),
        ("TagA", 2_598_919),
        ("hello", 99_162_322),
        ("*", 42),
        ("中", 20013),
        // One supplementary character: two UTF-16 code units.
        ("\u{1F600}", 0xD83D * 31 + 0xDE00),
        // Wraps to Integer.MIN_VALUE.
        ("polygenelubricants", i32::MIN),
    ];
    for (s, want) in rows {
        assert_eq!(java_string_hash(s), *want, "{s:?}");
    }
}

#[test]
fn tag_expressions_parse_like_filter_api() {
    let rows: &[(&str, bool, &[&str])] = &[
        ("", true, &[]),
        ("*", true, &[]),
        ("TagA", false, &["TagA"]),
        ("TagA || TagB", false, &["TagA", "TagB"]),
        ("  TagA||TagB  ||TagC ", false, &["TagA", "TagB", "TagC"]),
        ("TagA || TagA", false, &["TagA"]),
        ("TagA ||  || TagB ||", false, &["TagA", "TagB"]),
        ("\tTagA\r\n", false, &["TagA"]),
        ("TagA | TagB", false, &["TagA | TagB"]),
        // Not exactly "*": a tag named "*", as in Java.
        (" * ", false, &["*"]),
        ("TagA || *", false, &["TagA", "*"]),
        // Only empty parts: matches nothing, as in Java.
        ("||", false, &[]),
        ("   ", false, &[]),
    ];
    for (expr, all, tags) in rows {
        let filter = TagFilter::parse(expr);
        assert_eq!(filter.all, *all, "{expr:?}");
        assert_eq!(filter.tags, *tags, "{expr:?}");
        let codes: Vec<i32> = tags.iter().map(|t| java_string_hash(t)).collect();
        assert_eq!(filter.code_set, codes, "{expr:?}");
    }
}

#[test]
fn tag_filter_matches_codes_and_tags() {
    let code = |t: &str| i64::from(java_string_hash(t));
    // (expression, tag of the message, expected)
    let rows: &[(&str, Option<&str>, bool)] = &[
        ("*", Some("TagA"), true),
        ("*", None, true),
        ("", Some("x"), true),
        ("TagA", Some("TagA"), true),
        ("TagA", Some("TagB"), false),
        ("TagA", Some("taga"), false),
        ("TagA || TagB", Some("TagB"), true),
        ("TagA || TagB", Some("TagC"), false),
        ("TagA", None, false),
        ("||", Some("TagA"), false),
    ];
    for (expr, tag, want) in rows {
        let filter = TagFilter::parse(expr);
        assert_eq!(filter.matches_tag(*tag), *want, "{expr:?} tag {tag:?}");
        let tags_code = tag.map_or(0, code);
        assert_eq!(filter.matches_tags_code(tags_code), *want, "{expr:?} code of {tag:?}");
    }
    // The unit's tags code is compared as a Java int.
    let filter = TagFilter::parse("TagA");
    assert!(filter.matches_tags_code(code("TagA") + (1 << 32)));
    let negative = TagFilter::parse("polygenelubricants");
    assert!(negative.matches_tags_code(i64::from(i32::MIN)));
    // Collisions pass the code check and fail the tag check: "Aa" and "BB" share a hash.
    assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
    let filter = TagFilter::parse("Aa");
    assert!(filter.matches_tags_code(code("BB")));
    assert!(!filter.matches_tag(Some("BB")));
}

// ---------------------------------------------------------------------------------------------
// SQL92 evaluation
// ---------------------------------------------------------------------------------------------

#[test]
fn acceptance_example() {
    check_eval(&[(
        "a > 5 AND b = 'x'",
        &[
            (&[("a", "6"), ("b", "x")], T),
            (&[("a", "5"), ("b", "x")], F),
            (&[("a", "100"), ("b", "y")], F),
            (&[("a", "6")], N),
            (&[("b", "x")], N),
            (&[("a", "4")], F),
            (&[("a", "abc"), ("b", "x")], X),
            (&[("a", "5.5"), ("b", "x")], X),
            (&[], N),
        ],
    )]);
}

#[test]
fn equality() {
    check_eval(&[
        ("a = 'x'", &[(&[("a", "x")], T), (&[("a", "y")], F), (&[("a", "X")], F), (&[], N)]),
        ("'x' = a", &[(&[("a", "x")], T), (&[], F)]),
        ("a = ''", &[(&[("a", "")], T), (&[("a", "x")], F)]),
        ("a = 'it''s'", &[(&[("a", "it's")], T), (&[("a", "it''s")], F)]),
        ("a = '中文'", &[(&[("a", "中文")], T)]),
        (
            "a = 5",
            &[
                (&[("a", "5")], T),
                (&[("a", "05")], T),
                (&[("a", "+5")], T),
                (&[("a", "6")], F),
                (&[("a", "-5")], F),
                (&[("a", "5.0")], X),
                (&[("a", " 5")], X),
                (&[("a", "x")], X),
                (&[("a", "2147483648")], X),
                (&[], N),
            ],
        ),
        ("a = 3000000000", &[(&[("a", "3000000000")], T), (&[("a", "5")], F), (&[("a", "1e10")], X)]),
        ("a = 10L", &[(&[("a", "10")], T)]),
        ("a = 9223372036854775807", &[(&[("a", "9223372036854775807")], T)]),
        (
            "a = 5.0",
            &[
                (&[("a", "5")], T),
                (&[("a", " 5 ")], T),
                (&[("a", "5f")], T),
                (&[("a", "5.0d")], T),
                (&[("a", "0.5e1")], T),
                (&[("a", "5.1")], F),
                (&[("a", "x")], X),
                (&[("a", "inf")], X),
            ],
        ),
        ("a = 0.0", &[(&[("a", "0")], T), (&[("a", "-0.0")], F)]),
        ("a = .5", &[(&[("a", "0.5")], T)]),
        ("a = 5.", &[(&[("a", "5")], T)]),
        ("a = 1.5e1", &[(&[("a", "15")], T)]),
        ("a = -5", &[(&[("a", "-5")], T), (&[("a", "5")], F)]),
        ("a = - -5", &[(&[("a", "5")], T)]),
        ("a = +5", &[(&[("a", "5")], T)]),
        ("a = TRUE", &[(&[("a", "true")], T), (&[("a", "TRUE")], T), (&[("a", "yes")], F), (&[], N)]),
        ("a = FALSE", &[(&[("a", "false")], T), (&[("a", "no")], T), (&[("a", "true")], F)]),
        // Java casts the boolean to a string: ClassCastException.
        ("TRUE = a", &[(&[("a", "true")], X), (&[], F)]),
        (
            "a = b",
            &[
                (&[("a", "1"), ("b", "1")], T),
                (&[("a", "1"), ("b", "1.0")], F),
                (&[("a", "x")], F),
                (&[("b", "x")], N),
                (&[], T),
            ],
        ),
        ("5 = 5.0", &[(&[], T)]),
        ("5 = 5L", &[(&[], T)]),
        ("3000000000 = 3000000000.0", &[(&[], T)]),
        ("1 = TRUE", &[(&[], F)]),
        ("TRUE = TRUE", &[(&[], T)]),
        ("TRUE = FALSE", &[(&[], F)]),
        ("'5' = 5", &[(&[], T)]),
        ("(a = 1) = TRUE", &[(&[("a", "1")], T), (&[("a", "2")], F), (&[], N)]),
    ]);
}

#[test]
fn inequality() {
    check_eval(&[
        ("a <> 'x'", &[(&[("a", "y")], T), (&[("a", "x")], F), (&[], N)]),
        ("a != 'x'", &[(&[("a", "y")], T), (&[("a", "x")], F), (&[], N)]),
        ("'x' <> a", &[(&[("a", "x")], F), (&[], T)]),
        ("a <> 5", &[(&[("a", "6")], T), (&[("a", "5")], F), (&[("a", "x")], X)]),
    ]);
}

#[test]
fn relational() {
    check_eval(&[
        (
            "a > 5",
            &[
                (&[("a", "6")], T),
                (&[("a", "5")], F),
                (&[("a", "-6")], F),
                (&[("a", "5.5")], X),
                (&[("a", "abc")], X),
                (&[("a", "")], X),
                (&[], N),
            ],
        ),
        ("a >= 5", &[(&[("a", "5")], T), (&[("a", "4")], F)]),
        ("a < 5", &[(&[("a", "4")], T), (&[("a", "-7")], T), (&[("a", "5")], F)]),
        ("a <= 5", &[(&[("a", "5")], T), (&[("a", "6")], F)]),
        ("a > 5.5", &[(&[("a", "5.6")], T), (&[("a", "6")], T), (&[("a", "1e3")], T), (&[("a", "5.5")], F)]),
        ("a > 3000000000", &[(&[("a", "3000000001")], T), (&[("a", "4")], F), (&[("a", "4.5")], X)]),
        ("a > -5", &[(&[("a", "-4")], T), (&[("a", "-5")], F)]),
        ("5 < a", &[(&[("a", "6")], T), (&[("a", "5")], F), (&[], N)]),
        // Two strings are compared as doubles, not as text.
        ("a > b", &[(&[("a", "10"), ("b", "9")], T), (&[("a", "9"), ("b", "10")], F), (&[("a", "x"), ("b", "1")], X)]),
        ("a < b", &[(&[("a", "NaN"), ("b", "1")], F), (&[("a", "-Infinity"), ("b", "1")], T), (&[("a", "1")], N)]),
        // Negating a string property gives NULL.
        ("-a > 5", &[(&[("a", "-10")], N)]),
        ("6 > 5", &[(&[], T)]),
        ("5 >= 5.0", &[(&[], T)]),
        ("- 3000000000 < -2147483648", &[(&[], T)]),
    ]);
}

#[test]
fn between() {
    check_eval(&[
        (
            "a BETWEEN 1 AND 5",
            &[
                (&[("a", "1")], T),
                (&[("a", "3")], T),
                (&[("a", "5")], T),
                (&[("a", "0")], F),
                (&[("a", "6")], F),
                (&[("a", "x")], X),
                (&[], N),
            ],
        ),
        ("a NOT BETWEEN 1 AND 5", &[(&[("a", "0")], T), (&[("a", "6")], T), (&[("a", "3")], F), (&[], N)]),
        ("a BETWEEN -5 AND -1", &[(&[("a", "-3")], T), (&[("a", "0")], F)]),
        // Negated bounds are not constants in Java: no order check.
        ("a BETWEEN -1 AND -5", &[(&[("a", "-3")], F)]),
        ("a BETWEEN 1.5 AND 2.5", &[(&[("a", "2")], T), (&[("a", "2.6")], F)]),
        ("a BETWEEN b AND c", &[(&[("a", "2"), ("b", "1"), ("c", "3")], T), (&[("a", "2"), ("b", "1")], N)]),
        ("a BETWEEN 5 AND 5", &[(&[("a", "5")], T)]),
    ]);
}

#[test]
fn in_lists() {
    check_eval(&[
        ("a IN ('x', 'y')", &[(&[("a", "x")], T), (&[("a", "y")], T), (&[("a", "z")], F), (&[], N)]),
        ("a NOT IN ('x', 'y')", &[(&[("a", "z")], T), (&[("a", "x")], F), (&[], N)]),
        ("a IN ('it''s')", &[(&[("a", "it's")], T)]),
        ("a IN ('5')", &[(&[("a", "5")], T), (&[("a", "05")], F)]),
        ("a IN ('q', 'w', 'e', 'r', 't', 'y', 'e', '')", &[(&[("a", "t")], T), (&[("a", "")], T), (&[("a", "u")], F)]),
        ("(a) IN ('x')", &[(&[("a", "x")], T)]),
    ]);
}

#[test]
fn null_tests() {
    check_eval(&[
        ("a IS NULL", &[(&[], T), (&[("a", "x")], F)]),
        ("a IS NOT NULL", &[(&[("a", "x")], T), (&[], F)]),
        ("NULL IS NULL", &[(&[], T)]),
        ("5 IS NULL", &[(&[], F)]),
        ("(a = 'x') IS NULL", &[(&[], T), (&[("a", "y")], F)]),
        ("a IS NULL OR a = 'x'", &[(&[], T), (&[("a", "x")], T), (&[("a", "y")], F)]),
    ]);
}

#[test]
fn three_valued_logic() {
    check_eval(&[
        ("TRUE", &[(&[], T)]),
        ("FALSE", &[(&[], F)]),
        ("NULL", &[(&[], N)]),
        ("TRUE AND TRUE", &[(&[], T)]),
        ("TRUE AND NULL", &[(&[], N)]),
        ("NULL AND TRUE", &[(&[], N)]),
        ("FALSE AND NULL", &[(&[], F)]),
        ("NULL AND FALSE", &[(&[], F)]),
        ("NULL AND NULL", &[(&[], N)]),
        ("TRUE OR NULL", &[(&[], T)]),
        ("NULL OR TRUE", &[(&[], T)]),
        ("FALSE OR NULL", &[(&[], N)]),
        ("NULL OR FALSE", &[(&[], N)]),
        ("FALSE OR FALSE", &[(&[], F)]),
        ("NOT TRUE", &[(&[], F)]),
        ("NOT FALSE", &[(&[], T)]),
        ("NOT NULL", &[(&[], N)]),
        ("NOT NOT TRUE", &[(&[], T)]),
        ("NOT (a = 'x')", &[(&[("a", "y")], T), (&[("a", "x")], F), (&[], N)]),
        ("NOT (a > 5)", &[(&[("a", "x")], X)]),
        // Evaluation is left to right with short circuit; a Java exception fails everything.
        ("b = 'x' OR a > 5", &[(&[("a", "abc"), ("b", "x")], T)]),
        ("a > 5 OR b = 'x'", &[(&[("a", "abc"), ("b", "x")], X)]),
        ("FALSE AND a > 5", &[(&[("a", "abc")], F)]),
        ("NULL AND a > 5", &[(&[("a", "abc")], X)]),
    ]);
}

#[test]
fn bare_properties_are_conditions_that_never_hold() {
    check_eval(&[
        ("a", &[(&[("a", "true")], F), (&[("a", "x")], F), (&[], N)]),
        ("NOT a", &[(&[("a", "true")], T), (&[], N)]),
        ("a OR b = 'x'", &[(&[("a", "true"), ("b", "x")], T), (&[("b", "y")], N)]),
        ("(a)", &[(&[("a", "true")], F)]),
        // `NOT` binds tighter than `=`: `(NOT a) = 'x'` never holds.
        ("NOT a = 'x'", &[(&[("a", "x")], X), (&[("a", "y")], X), (&[], N)]),
    ]);
}

#[test]
fn text_operators_of_5x() {
    check_eval(&[
        ("a CONTAINS 'bc'", &[(&[("a", "abcd")], T), (&[("a", "xyz")], F), (&[], F)]),
        ("a NOT CONTAINS 'bc'", &[(&[("a", "xyz")], T), (&[("a", "abcd")], F), (&[], F)]),
        ("a CONTAINS ''", &[(&[("a", "x")], F)]),
        ("a NOT CONTAINS ''", &[(&[("a", "x")], F)]),
        ("a STARTSWITH 'ab'", &[(&[("a", "abc")], T), (&[("a", "cab")], F), (&[], F)]),
        ("a NOT STARTSWITH 'ab'", &[(&[("a", "cab")], T), (&[("a", "abc")], F), (&[], F)]),
        ("a ENDSWITH 'bc'", &[(&[("a", "abc")], T), (&[("a", "bca")], F), (&[], F)]),
        ("a NOT ENDSWITH 'bc'", &[(&[("a", "bca")], T), (&[("a", "abc")], F), (&[], F)]),
        ("NOT (a CONTAINS 'x')", &[(&[], T)]),
        ("a CONTAINS 'it''s'", &[(&[("a", "it's ok")], T)]),
        ("'abc' CONTAINS 'b'", &[(&[], T)]),
        ("5 CONTAINS '5'", &[(&[], F)]),
        // Only keywords where an operator is expected: 4.9.4 property names keep working.
        ("contains CONTAINS 'x'", &[(&[("contains", "xx")], T)]),
        ("startswith = 'x' AND endswith IS NULL", &[(&[("startswith", "x")], T)]),
        ("a CONTAINS 'x' AND b STARTSWITH 'y'", &[(&[("a", "x"), ("b", "yz")], T), (&[("a", "x"), ("b", "zy")], F)]),
    ]);
}

#[test]
fn precedence() {
    let props: &[(Props<'_>, Outcome)] = &[
        (&[("a", "1"), ("b", "0"), ("c", "0")], T),
        (&[("a", "0"), ("b", "2"), ("c", "3")], T),
        (&[("a", "0"), ("b", "2"), ("c", "0")], F),
    ];
    check_eval(&[("a = 1 OR b = 2 AND c = 3", props)]);
    check_eval(&[("a = 1 OR (b = 2 AND c = 3)", props)]);
    check_eval(&[(
        "(a = 1 OR b = 2) AND c = 3",
        &[(&[("a", "1"), ("b", "0"), ("c", "0")], F), (&[("a", "1"), ("b", "0"), ("c", "3")], T)],
    )]);
    check_eval(&[
        ("a = 1 AND b = 2 OR c = 3", &[(&[("a", "0"), ("b", "0"), ("c", "3")], T)]),
        ("a = 1 AND (b = 2 OR c = 3)", &[(&[("a", "0"), ("b", "0"), ("c", "3")], F)]),
        // Comparisons bind tighter than equality.
        ("a > 1 = TRUE", &[(&[("a", "2")], T), (&[("a", "0")], F)]),
        ("a = 1 AND NOT (b = 2) OR c = 3", &[(&[("a", "1"), ("b", "3"), ("c", "0")], T)]),
    ]);
}

#[test]
fn keywords_are_case_insensitive() {
    check_eval(&[
        ("a between 1 and 5", &[(&[("a", "3")], T)]),
        ("a Not Between 1 And 5", &[(&[("a", "3")], F)]),
        ("a is not null", &[(&[("a", "x")], T)]),
        ("a Is Null", &[(&[], T)]),
        ("a in ('x')", &[(&[("a", "x")], T)]),
        ("a not in ('x')", &[(&[("a", "x")], F)]),
        ("true and not false", &[(&[], T)]),
        ("null or False", &[(&[], N)]),
        ("a = 1 or b = 2", &[(&[("b", "2")], T)]),
        ("a contains 'x'", &[(&[("a", "x")], T)]),
        ("a NoT StArTsWiTh 'x'", &[(&[("a", "y")], T)]),
        ("a endsWith 'x'", &[(&[("a", "yx")], T)]),
        ("a = 10l", &[(&[("a", "10")], T)]),
        ("a = 1E1", &[(&[("a", "10")], T)]),
        // Property names are case-sensitive.
        ("A = 'x'", &[(&[("a", "x")], N), (&[("A", "x")], T)]),
    ]);
}

#[test]
fn lexical_details() {
    check_eval(&[
        ("a = 1 -- a comment\n AND b = 2", &[(&[("a", "1"), ("b", "2")], T)]),
        ("a = 1 -- a comment to the end", &[(&[("a", "1")], T)]),
        ("/* lead */ a /* mid */ = 1 /**/", &[(&[("a", "1")], T)]),
        ("/* a ** b */ a = 1", &[(&[("a", "1")], T)]),
        ("a\t=\r\n1\x0c", &[(&[("a", "1")], T)]),
        ("a=1AND b=2", &[(&[("a", "1"), ("b", "2")], T)]),
        ("_a$1 = 'x' AND $b = 'y'", &[(&[("_a$1", "x"), ("$b", "y")], T)]),
        ("a='x'", &[(&[("a", "x")], T)]),
        ("a=-1", &[(&[("a", "-1")], T)]),
        ("a>=1 AND a<=2 AND a<>3", &[(&[("a", "1")], T)]),
        ("(((a = 1)))", &[(&[("a", "1")], T)]),
    ]);
}

#[test]
fn tags_are_visible_as_a_property() {
    let sub = Subscription::parse(Some("SQL92"), "TAGS = 'TagA' AND a = '1'").unwrap_or_else(|e| panic!("{e}"));
    let props: Props<'_> = &[("a", "1")];
    assert!(sub.matches_message(Some("TagA"), props));
    assert!(!sub.matches_message(Some("TagB"), props));
    assert!(!sub.matches_message(None, props));
    // The properties' own TAGS wins.
    let with_tags: Props<'_> = &[("a", "1"), ("TAGS", "TagA")];
    assert!(sub.matches_message(None, with_tags));
    let tags_in = Subscription::parse(Some("SQL92"), "TAGS IN ('TagA', 'TagB')").unwrap_or_else(|e| panic!("{e}"));
    assert!(tags_in.matches_message(Some("TagB"), &[] as Props<'_>));
    assert!(!tags_in.matches_message(Some("TagC"), &[] as Props<'_>));
}

#[test]
fn property_sources() {
    let filter = parse("a > 5 AND b = 'x'");
    let hash: HashMap<String, String> = [("a", "6"), ("b", "x")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
    assert!(filter.matches(&hash));
    let btree: BTreeMap<String, String> = hash.clone().into_iter().collect();
    assert!(filter.matches(&btree));
    let owned: Vec<(String, String)> = hash.clone().into_iter().collect();
    assert!(filter.matches(owned.as_slice()));
    let encoded = crate::store::format::encode_properties([("a", "6"), ("b", "x"), ("TAGS", "T")]);
    assert!(filter.matches(&EncodedProperties(&encoded)));
    assert!(!filter.matches(&EncodedProperties("")));
    let lookup = PropertyFn::new(|name: &str| hash.get(name).map(String::as_str));
    assert!(filter.matches(&lookup));
    assert!(!filter.matches(&PropertyFn::new(|_: &str| None)));
}

// ---------------------------------------------------------------------------------------------
// Errors and limits
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_expressions() {
    check_errors(&[
        ("", 0, "expected a value, a property or '(', found end of input"),
        ("   ", 3, "found end of input"),
        ("a =", 3, "found end of input"),
        ("a = 'x", 4, "unterminated string literal"),
        ("a = 'x''", 4, "unterminated string literal"),
        ("a = 1 b = 2", 6, "unexpected identifier `b` after the end of the expression"),
        ("a = 1)", 5, "unexpected ')' after the end"),
        ("a = 007", 5, "unexpected number 0 after the end"),
        ("a = 0L", 5, "unexpected identifier `L`"),
        ("(a = 1", 6, "expected ')', found end of input"),
        ("a.b = 1", 1, "unexpected character '.'"),
        ("a = .", 4, "unexpected character '.'"),
        ("a # 1", 2, "unexpected character '#'"),
        ("a ! 1", 2, "unexpected character '!'"),
        ("é = 1", 0, "unexpected character 'é'"),
        ("a = 1 / 2", 6, "unexpected character '/'"),
        ("/* x", 0, "unterminated /* comment"),
        ("a = 1 /*/", 6, "unterminated /* comment"),
        ("a = NULL", 4, "NULL cannot be compared with =; use IS NULL"),
        ("NULL = a", 0, "NULL cannot be compared"),
        ("a <> NULL", 5, "NULL cannot be compared with <>"),
        ("TRUE = 1", 0, "TRUE cannot be compared with the number 1"),
        ("FALSE = 'x'", 0, "FALSE cannot be compared"),
        ("a > 'x'", 4, "the string 'x' cannot be compared with >"),
        ("'x' < a", 0, "the string 'x' cannot be compared with <"),
        ("a >= TRUE", 5, "TRUE cannot be compared with >="),
        ("a <= NULL", 5, "NULL cannot be compared with <="),
        ("(a = 1) > 5", 1, "a condition cannot be compared with >"),
        ("NOT a > 5", 0, "a condition cannot be compared"),
        ("a BETWEEN 5 AND 1", 10, "BETWEEN needs the number 5 <= the number 1"),
        ("a BETWEEN 1.5 AND 1", 10, "BETWEEN needs"),
        ("a BETWEEN NULL AND 1", 10, "the bounds of BETWEEN cannot be NULL"),
        ("a BETWEEN 'a' AND 'b'", 10, "the string 'a' cannot be compared with >="),
        ("a BETWEEN 1 AND 'x'", 10, "the bounds of BETWEEN cannot be compared"),
        ("a BETWEEN TRUE AND 1", 10, "BETWEEN needs"),
        ("a NOT BETWEEN 'a' AND 1", 14, "cannot be compared with <"),
        ("a BETWEEN 1 OR 2", 12, "expected AND between the bounds of BETWEEN, found keyword OR"),
        ("NOT a BETWEEN 1 AND 2", 0, "a condition cannot be compared with >="),
        ("5 IN ('x')", 2, "IN needs a property on its left, not the number 5"),
        ("NOT a IN ('x')", 6, "IN needs a property on its left, not a condition"),
        ("a IN ()", 6, "expected a string literal after IN (, found ')'"),
        ("a IN (1)", 6, "expected a string literal"),
        ("a IN ('x' 'y')", 10, "expected ',' or ')' in the IN list"),
        ("a IN ('x',)", 10, "expected a string literal after ','"),
        ("a IN 'x'", 5, "expected '(' after IN"),
        ("a NOT IN 'x'", 9, "expected '(' after IN"),
        ("a IS 5", 5, "expected NULL or NOT NULL after IS, found number 5"),
        ("a IS NOT 5", 9, "expected NULL or NOT NULL"),
        ("a CONTAINS 5", 11, "expected a string literal after CONTAINS, found number 5"),
        ("a NOT ENDSWITH b", 15, "expected a string literal after ENDSWITH"),
        ("a NOT = 1", 2, "unexpected keyword NOT after the end"),
        ("'x'", 0, "the string 'x' is not a condition"),
        ("5", 0, "the number 5 is not a condition"),
        ("-a", 0, "a negated value is not a condition"),
        ("a = 1 AND 5", 10, "the number 5 is not a condition"),
        ("'x' OR a = 1", 0, "the string 'x' is not a condition"),
        ("NOT 5", 4, "the number 5 is not a condition"),
        ("a = 99999999999999999999", 4, "integer 99999999999999999999 is out of the long range"),
        ("a = 9223372036854775808", 4, "out of the long range"),
        ("a = 1e999", 4, "number 1e999 is out of the double range"),
        ("a = +", 5, "found end of input"),
        ("AND", 0, "found keyword AND"),
        ("a = 1 AND", 9, "found end of input"),
        ("a = 1 OR OR b = 2", 9, "found keyword OR"),
        ("a IS NULL IS", 12, "expected NULL or NOT NULL"),
    ]);
}

#[test]
fn error_messages_read_well() {
    let rows: &[(&str, &str)] = &[
        (
            "a = 1 b = 2",
            "invalid SQL92 expression at byte 6: unexpected identifier `b` after the end of the expression",
        ),
        ("a > 'x'", "invalid SQL92 expression at byte 4: the string 'x' cannot be compared with >"),
        (
            "a = 'a very long string literal that goes on and on' b",
            "invalid SQL92 expression at byte 53: unexpected identifier `b` after the end of the expression",
        ),
        (
            "a IN ('a very long string literal that goes on and on' 'x')",
            "invalid SQL92 expression at byte 55: expected ',' or ')' in the IN list, found string 'x'",
        ),
        (
            "a = 1 AND 'a very long string literal that goes on and on'",
            "invalid SQL92 expression at byte 10: the string 'a very long string literal that ...' is not a condition",
        ),
    ];
    for (expr, want) in rows {
        match SqlFilter::parse(expr) {
            Err(e) => assert_eq!(e.to_string(), *want, "{expr:?}"),
            Ok(_) => panic!("{expr:?} should not parse"),
        }
    }
    let e = Subscription::parse(Some("sql92"), "a = 1").err().map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some("unsupported expression type \"sql92\" (expected \"TAG\" or \"SQL92\")"));
}

#[test]
fn expression_length_limit() {
    let fits = format!("a = '{}'", "x".repeat(SQL_EXPRESSION_BYTES_MAX - 6));
    assert_eq!(fits.len(), SQL_EXPRESSION_BYTES_MAX);
    assert!(parse(&fits).matches(&[("a", &fits[5..fits.len() - 1])][..]));
    let long = format!("{fits} ");
    assert_eq!(
        SqlFilter::parse(&long).err(),
        Some(Error::SqlTooLong { bytes: SQL_EXPRESSION_BYTES_MAX + 1, bytes_max: SQL_EXPRESSION_BYTES_MAX })
    );
    // Checked first, before anything else about the input.
    let garbage = "#".repeat(1 << 20);
    assert!(matches!(SqlFilter::parse(&garbage), Err(Error::SqlTooLong { .. })));
}

#[test]
fn nesting_depth_limit() {
    let deep =
        |expr: &str| matches!(SqlFilter::parse(expr), Err(Error::SqlTooDeep { depth_max: SQL_NESTING_DEPTH_MAX, .. }));
    let parens = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(&parens(SQL_NESTING_DEPTH_MAX)).matches(&[("a", "1")][..]));
    assert!(deep(&parens(SQL_NESTING_DEPTH_MAX + 1)));
    assert!(deep(&"(".repeat(4000)));
    // Tree depth: TRUE is one level, each NOT adds one.
    let nots = |n: usize| format!("{}TRUE", "NOT ".repeat(n));
    assert_eq!(parse(&nots(SQL_NESTING_DEPTH_MAX - 2)).evaluate(&[] as Props<'_>), T);
    assert_eq!(parse(&nots(SQL_NESTING_DEPTH_MAX - 1)).evaluate(&[] as Props<'_>), F);
    assert!(deep(&nots(SQL_NESTING_DEPTH_MAX)));
    assert!(deep(&nots(1000)));
    assert!(deep(&format!("{}1 = a", "- ".repeat(2000))));
    assert!(deep(&format!("{}a = 1", "+".repeat(4000))));
    // Left-deep chains built without recursion are bounded too.
    assert!(deep(&format!("a{}", " = a".repeat(100))));
    assert!(deep(&format!("a{}", " IS NULL".repeat(100))));
    assert!(deep(&format!("a{}", " CONTAINS 'x'".repeat(100))));
    // AND/OR chains are flat: a long one is fine.
    let chain = format!("a = 0{}", " OR a = 1".repeat(400));
    assert!(chain.len() <= SQL_EXPRESSION_BYTES_MAX);
    assert!(parse(&chain).matches(&[("a", "1")][..]));
    let chain = format!("a = 1{}", " AND a = 1".repeat(400));
    assert!(parse(&chain).matches(&[("a", "1")][..]));
    // Errors carry the position where the limit was hit.
    assert_eq!(
        SqlFilter::parse(&parens(SQL_NESTING_DEPTH_MAX + 1)).err(),
        Some(Error::SqlTooDeep { position: SQL_NESTING_DEPTH_MAX, depth_max: SQL_NESTING_DEPTH_MAX })
    );
}

// ---------------------------------------------------------------------------------------------
// Subscription
// ---------------------------------------------------------------------------------------------

#[test]
fn subscriptions() {
    let code = |t: &str| i64::from(java_string_hash(t));
    let sql_props: Props<'_> = &[("a", "6")];
    // (type, expression, kind, matches TagA's code, matches message TagA with `a = 6`)
    let rows: &[(Option<&str>, &str, &str, bool, bool)] = &[
        (None, "*", "all", true, true),
        (None, "", "all", true, true),
        (Some(""), "*", "all", true, true),
        (Some("TAG"), "*", "all", true, true),
        (Some("TAG"), "TagA || TagB", "tags", true, true),
        (None, "TagB", "tags", false, false),
        (Some("SQL92"), "a > 5", "sql", true, true),
        (Some("SQL92"), "a > 7", "sql", true, false),
        (Some("SQL92"), "TAGS = 'TagA'", "sql", true, true),
    ];
    for (kind_of, expr, kind, by_code, by_message) in rows {
        let sub = Subscription::parse(*kind_of, expr).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
        let got = match sub {
            Subscription::All => "all",
            Subscription::Tags(_) => "tags",
            Subscription::Sql(_) => "sql",
        };
        assert_eq!(got, *kind, "{kind_of:?} {expr:?}");
        assert_eq!(sub.matches_tags_code(code("TagA")), *by_code, "{kind_of:?} {expr:?}");
        assert_eq!(sub.matches_message(Some("TagA"), sql_props), *by_message, "{kind_of:?} {expr:?}");
    }
    let errors: &[(Option<&str>, &str)] = &[
        (Some("sql92"), "a > 1"),
        (Some("tag"), "*"),
        (Some("CLASS"), "x"),
        (Some("SQL92"), "a >"),
        (Some("SQL92"), ""),
    ];
    for (kind_of, expr) in errors {
        assert!(Subscription::parse(*kind_of, expr).is_err(), "{kind_of:?} {expr:?}");
    }
    if let Ok(Subscription::Sql(filter)) = Subscription::parse(Some("SQL92"), "a > 5") {
        assert_eq!(filter.expression(), "a > 5");
    } else {
        panic!("SQL92 subscription expected");
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz
// ---------------------------------------------------------------------------------------------

/// A tiny xorshift64 generator, so the fuzz loops are reproducible without extra crates.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const FUZZ_PROPS: &[Props<'static>] = &[
    &[],
    &[("a", "1"), ("b", "x"), ("TAGS", "TagA")],
    &[("a", "abc"), ("b", "2.5"), ("c", "true")],
    &[("a", "-0.0"), ("b", "NaN"), ("c", "")],
];

fn exercise(input: &str) {
    if let Ok(filter) = SqlFilter::parse(input) {
        for props in FUZZ_PROPS {
            let _ = filter.matches(*props);
            let _ = filter.evaluate(*props);
        }
    }
    let _ = Subscription::parse(None, input).map(|s| s.matches_message(Some("TagA"), FUZZ_PROPS[1]));
}

#[test]
fn fuzz_random_bytes_never_panic() {
    const ALPHABET: &[u8] = b" \t\n'()=<>!,+-.*/_$aAbBeElLnNoOtT0123456789";
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let len = rng.below(48);
        let bytes: Vec<u8> = (0..len)
            .map(|_| if rng.below(4) == 0 { rng.next() as u8 } else { ALPHABET[rng.below(ALPHABET.len())] })
            .collect();
        exercise(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn fuzz_token_soup_never_panics() {
    const TOKENS: &[&str] = &[
        "a",
        "b",
        "c",
        "TAGS",
        "=",
        "<>",
        "!=",
        ">",
        ">=",
        "<",
        "<=",
        "(",
        ")",
        ",",
        "+",
        "-",
        "NOT",
        "AND",
        "OR",
        "BETWEEN",
        "IN",
        "IS",
        "NULL",
        "TRUE",
        "FALSE",
        "CONTAINS",
        "STARTSWITH",
        "ENDSWITH",
        "'x'",
        "''",
        "'1'",
        "5",
        "0",
        "1.5",
        ".5",
        "5e3",
        "3000000000",
        "9223372036854775807",
        "1L",
        "--",
        "/**/",
    ];
    let mut rng = XorShift(0x0123_4567_89AB_CDEF);
    let mut parsed = 0;
    for _ in 0..50_000 {
        let len = 1 + rng.below(12);
        let soup: Vec<&str> = (0..len).map(|_| TOKENS[rng.below(TOKENS.len())]).collect();
        let input = soup.join(" ");
        if SqlFilter::parse(&input).is_ok() {
            parsed += 1;
        }
        exercise(&input);
    }
    // The soup reaches the evaluator, not just the error paths.
    assert!(parsed > 500, "only {parsed} token soups parsed");
}
