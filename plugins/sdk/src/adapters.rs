//! The glue between the generated bindings and the plugin traits.

use crate::bindings::{checker as cb, filter as fb, router as rb};
use crate::message::{Batch, bitmap};
use crate::{Checker, Filter, Needs, Params, Resolution, Route, RouteContext, Router};

macro_rules! needs_flags {
    ($module:ident, $needs:expr) => {{
        use $module::rocketmq::plugin::types::Needs as N;
        let n: Needs = $needs;
        let mut f = N::empty();
        if n.topic {
            f |= N::TOPIC;
        }
        if n.tags {
            f |= N::TAGS;
        }
        if n.keys {
            f |= N::KEYS;
        }
        if n.properties {
            f |= N::PROPERTIES;
        }
        if n.body {
            f |= N::BODY;
        }
        f
    }};
}

/// Wraps a [`Filter`] as the `matcher` resource.
pub struct FilterAdapter<T>(T);

impl<T: Filter> FilterAdapter<T> {
    pub fn info() -> fb::rocketmq::plugin::types::PluginInfo {
        fb::rocketmq::plugin::types::PluginInfo {
            name: T::NAME.into(),
            version: T::VERSION.into(),
            needs: needs_flags!(fb, T::NEEDS),
            max_batch: T::MAX_BATCH,
        }
    }
}

impl<T: Filter> fb::exports::rocketmq::plugin::filter::GuestMatcher for FilterAdapter<T> {
    fn create(
        params: Vec<(String, String)>,
    ) -> Result<fb::exports::rocketmq::plugin::filter::Matcher, fb::rocketmq::plugin::types::PluginError> {
        crate::install_panic_hook();
        match T::create(&Params::from_pairs(params)) {
            Ok(f) => Ok(fb::exports::rocketmq::plugin::filter::Matcher::new(FilterAdapter(f))),
            Err(e) => Err(fb::rocketmq::plugin::types::PluginError::InvalidConfig(e)),
        }
    }

    fn prefilter(&self, tags_codes: Vec<i64>) -> Option<Vec<u64>> {
        if !T::HAS_PREFILTER || !self.0.prefilters() {
            return None;
        }
        Some(bitmap(tags_codes.len(), |i| self.0.prefilter(tags_codes[i])))
    }

    fn matches(
        &self,
        batch: fb::rocketmq::plugin::types::MsgBatch,
    ) -> Result<fb::exports::rocketmq::plugin::filter::Verdicts, fb::rocketmq::plugin::types::PluginError> {
        let b = Batch::new(&batch.data, &batch.index);
        let n = b.len();
        let mut pass = vec![0u64; n.div_ceil(64)];
        let mut errors = vec![0u64; n.div_ceil(64)];
        for (i, m) in b.iter().enumerate() {
            match self.0.matches(&m) {
                Ok(true) => pass[i / 64] |= 1 << (i % 64),
                Ok(false) => {}
                Err(_) => errors[i / 64] |= 1 << (i % 64),
            }
        }
        Ok(fb::exports::rocketmq::plugin::filter::Verdicts { pass, errors })
    }
}

/// Wraps a [`Router`] as the `selector` resource.
pub struct RouterAdapter<T>(T);

impl<T: Router> RouterAdapter<T> {
    pub fn info() -> rb::rocketmq::plugin::types::PluginInfo {
        rb::rocketmq::plugin::types::PluginInfo {
            name: T::NAME.into(),
            version: T::VERSION.into(),
            needs: needs_flags!(rb, T::NEEDS),
            max_batch: T::MAX_BATCH,
        }
    }
}

impl<T: Router> rb::exports::rocketmq::plugin::router::GuestSelector for RouterAdapter<T> {
    fn create(
        params: Vec<(String, String)>,
    ) -> Result<rb::exports::rocketmq::plugin::router::Selector, rb::rocketmq::plugin::types::PluginError> {
        crate::install_panic_hook();
        match T::create(&Params::from_pairs(params)) {
            Ok(r) => Ok(rb::exports::rocketmq::plugin::router::Selector::new(RouterAdapter(r))),
            Err(e) => Err(rb::rocketmq::plugin::types::PluginError::InvalidConfig(e)),
        }
    }

    fn route(
        &self,
        ctx: rb::exports::rocketmq::plugin::router::RouteContext,
        batch: rb::rocketmq::plugin::types::MsgBatch,
    ) -> Result<Vec<rb::exports::rocketmq::plugin::router::Decision>, rb::rocketmq::plugin::types::PluginError> {
        use rb::exports::rocketmq::plugin::router::Decision;
        let ctx = RouteContext { topic: ctx.topic, write_queues: ctx.write_queues };
        let b = Batch::new(&batch.data, &batch.index);
        Ok(b.iter()
            .map(|m| match self.0.route(&ctx, &m) {
                Route::Keep => Decision::Keep,
                Route::Queue(q) => Decision::ToQueue(q),
                Route::Topic(t, q) => Decision::ToTopic((t, q)),
                Route::Reject(why) => Decision::Reject(why),
            })
            .collect())
    }
}

/// Wraps a [`Checker`] as the `checker` resource.
pub struct CheckerAdapter<T>(T);

impl<T: Checker> CheckerAdapter<T> {
    pub fn info() -> cb::rocketmq::plugin::types::PluginInfo {
        cb::rocketmq::plugin::types::PluginInfo {
            name: T::NAME.into(),
            version: T::VERSION.into(),
            needs: needs_flags!(cb, T::NEEDS),
            max_batch: T::MAX_BATCH,
        }
    }
}

impl<T: Checker> cb::exports::rocketmq::plugin::transaction_checker::GuestChecker for CheckerAdapter<T> {
    fn create(
        params: Vec<(String, String)>,
    ) -> Result<cb::exports::rocketmq::plugin::transaction_checker::Checker, cb::rocketmq::plugin::types::PluginError>
    {
        crate::install_panic_hook();
        match T::create(&Params::from_pairs(params)) {
            Ok(c) => Ok(cb::exports::rocketmq::plugin::transaction_checker::Checker::new(CheckerAdapter(c))),
            Err(e) => Err(cb::rocketmq::plugin::types::PluginError::InvalidConfig(e)),
        }
    }

    fn check(
        &self,
        batch: cb::rocketmq::plugin::types::MsgBatch,
    ) -> Result<
        Vec<cb::exports::rocketmq::plugin::transaction_checker::Resolution>,
        cb::rocketmq::plugin::types::PluginError,
    > {
        use cb::exports::rocketmq::plugin::transaction_checker::Resolution as R;
        let b = Batch::new(&batch.data, &batch.index);
        Ok(b.iter()
            .map(|m| match self.0.check(&m) {
                Resolution::Commit => R::Commit,
                Resolution::Rollback => R::Rollback,
                Resolution::Unknown => R::Unknown,
            })
            .collect())
    }
}
