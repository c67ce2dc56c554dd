//! A transaction checker that decides from a message property.
//!
//! Parameters: `property` (the property to read, required), `commit` and `rollback` (comma
//! separated values that commit or roll back the half message). Any other value, or no such
//! property, is `unknown`: the broker asks the producer as usual.

use rocketmq_plugin_sdk::{Checker, Message, Needs, Params, Resolution, export_checker};

pub struct PropertyChecker {
    property: String,
    commit: Vec<String>,
    rollback: Vec<String>,
}

fn values(p: &Params, name: &str) -> Vec<String> {
    p.get(name).unwrap_or("").split(',').map(str::trim).filter(|v| !v.is_empty()).map(String::from).collect()
}

impl Checker for PropertyChecker {
    const NAME: &'static str = "property-checker";
    const NEEDS: Needs = Needs { topic: false, tags: false, keys: false, properties: true, body: false };

    fn create(params: &Params) -> Result<Self, String> {
        let property = params.required("property")?.to_string();
        let (commit, rollback) = (values(params, "commit"), values(params, "rollback"));
        if commit.is_empty() && rollback.is_empty() {
            return Err("give `commit` and/or `rollback` values".into());
        }
        if let Some(v) = commit.iter().find(|v| rollback.contains(v)) {
            return Err(format!("value `{v}` is in both `commit` and `rollback`"));
        }
        Ok(PropertyChecker { property, commit, rollback })
    }

    fn check(&self, msg: &Message<'_>) -> Resolution {
        match msg.property(&self.property) {
            Some(v) if self.commit.iter().any(|c| c == v) => Resolution::Commit,
            Some(v) if self.rollback.iter().any(|c| c == v) => Resolution::Rollback,
            _ => Resolution::Unknown,
        }
    }
}

export_checker!(PropertyChecker);
