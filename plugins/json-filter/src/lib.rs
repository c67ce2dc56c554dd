//! A filter on one field of a JSON body.
//!
//! Parameters:
//! * `field`: the field's path, dot separated (`order.region`; array items by index, `items.0.sku`).
//! * one condition: `equals` (the field's string value, or the JSON text of a number or boolean),
//!   `in` (comma-separated values, compared like `equals`), `exists` (`true` or `false`), or
//!   `gt` / `lt` (numbers; both may be given for a range).
//!
//! A body that is not JSON is an error for that message: it is not delivered, and it is counted.

use rocketmq_plugin_sdk::{Filter, Message, Needs, Params, export_filter};
use serde_json::Value;

enum Cond {
    In(Vec<String>),
    Exists(bool),
    Range(Option<f64>, Option<f64>),
}

pub struct JsonFilter {
    path: Vec<String>,
    cond: Cond,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn number(p: &Params, name: &str) -> Result<Option<f64>, String> {
    p.get(name)
        .map(|v| v.trim().parse::<f64>().map_err(|_| format!("`{name}` must be a number, not `{v}`")))
        .transpose()
}

impl JsonFilter {
    pub fn new(p: &Params) -> Result<JsonFilter, String> {
        let field = p.required("field")?.trim();
        if field.is_empty() {
            return Err("`field` is empty".into());
        }
        let path = field.split('.').map(str::to_owned).collect();
        let cond = if let Some(v) = p.get("equals") {
            Cond::In(vec![v.to_owned()])
        } else if let Some(v) = p.get("in") {
            Cond::In(v.split(',').map(|s| s.trim().to_owned()).collect())
        } else if let Some(v) = p.get("exists") {
            match v.trim() {
                "true" => Cond::Exists(true),
                "false" => Cond::Exists(false),
                other => return Err(format!("`exists` must be true or false, not `{other}`")),
            }
        } else {
            let (gt, lt) = (number(p, "gt")?, number(p, "lt")?);
            if gt.is_none() && lt.is_none() {
                return Err("give one condition: equals, in, exists, gt or lt".into());
            }
            Cond::Range(gt, lt)
        };
        Ok(JsonFilter { path, cond })
    }

    pub fn matches_body(&self, body: &[u8]) -> Result<bool, String> {
        let doc: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
        let mut at = &doc;
        let mut found = true;
        for key in &self.path {
            let next = match at {
                Value::Object(m) => m.get(key),
                Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
            match next {
                Some(v) => at = v,
                None => {
                    found = false;
                    break;
                }
            }
        }
        Ok(match &self.cond {
            Cond::Exists(want) => found == *want,
            _ if !found => false,
            Cond::In(values) => text(at).is_some_and(|t| values.contains(&t)),
            Cond::Range(gt, lt) => at.as_f64().is_some_and(|x| gt.is_none_or(|g| x > g) && lt.is_none_or(|l| x < l)),
        })
    }
}

impl Filter for JsonFilter {
    const NAME: &'static str = "json-filter";
    const NEEDS: Needs = Needs { topic: false, tags: false, keys: false, properties: false, body: true };

    fn create(params: &Params) -> Result<Self, String> {
        JsonFilter::new(params)
    }

    fn matches(&self, msg: &Message<'_>) -> Result<bool, String> {
        self.matches_body(msg.body())
    }
}

export_filter!(JsonFilter);

#[cfg(test)]
mod tests {
    use rocketmq_plugin_sdk::testing::{TestMessage, filter, params};

    use super::JsonFilter;

    #[test]
    fn conditions_on_one_field() {
        let bodies = [r#"{"order":{"region":"eu","n":3}}"#, r#"{"order":{"region":"us","n":12}}"#, "not json", "{}"];
        let msgs: Vec<TestMessage> = bodies.iter().map(|b| TestMessage::new().body(b)).collect();
        let cases: [(&[(&str, &str)], [Option<bool>; 4]); 4] = [
            (&[("field", "order.region"), ("equals", "eu")], [Some(true), Some(false), None, Some(false)]),
            (&[("field", "order.region"), ("in", "us, apac")], [Some(false), Some(true), None, Some(false)]),
            (&[("field", "order.n"), ("gt", "5")], [Some(false), Some(true), None, Some(false)]),
            (&[("field", "order"), ("exists", "true")], [Some(true), Some(true), None, Some(false)]),
        ];
        for (p, want) in cases {
            let got: Vec<Option<bool>> = filter::<JsonFilter>(&params(p), &msgs).into_iter().map(Result::ok).collect();
            assert_eq!(got, want, "{p:?}");
        }
    }
}
