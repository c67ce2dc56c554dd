//! Transactions (acceptance 8): a committed half message is delivered, a rolled-back one never,
//! and an unknown one is resolved through the broker's check-back to the producer group.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rocketmq_client_rust::{LocalTransactionState, TransactionListener, TransactionMQProducer};
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::common::message::message_ext::MessageExt;

use super::{
    ARRIVAL, Inbox, Listener, QUIET, Recorder, Subscription, client_config, eventually, message, serial,
    start_push_consumer, with_client,
};
use crate::support::Cluster;

/// Transactions of each outcome.
const EACH: usize = 3;
const OUTCOMES: [&str; 3] = ["commit", "rollback", "unknown"];

/// Decides by the message's `outcome` property; answers checks of "unknown" ones with commit.
#[derive(Clone, Default)]
struct Decider {
    /// `outcome-seq` of every message the broker asked about, with how many times.
    checks: Arc<Mutex<BTreeMap<String, usize>>>,
}

fn user_property(properties: &std::collections::HashMap<impl AsRef<str>, impl AsRef<str>>, key: &str) -> String {
    properties.iter().find(|(k, _)| k.as_ref() == key).map(|(_, v)| v.as_ref().to_owned()).unwrap_or_default()
}

impl TransactionListener for Decider {
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        _arg: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        match user_property(msg.get_properties(), "outcome").as_str() {
            "commit" => LocalTransactionState::CommitMessage,
            "rollback" => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::Unknown,
        }
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let outcome = user_property(msg.properties(), "outcome");
        let seq = user_property(msg.properties(), "seq");
        *self.checks.lock().unwrap().entry(format!("{outcome}-{seq}")).or_default() += 1;
        match outcome.as_str() {
            "rollback" => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::CommitMessage,
        }
    }
}

#[test]
fn commit_is_delivered_rollback_never_and_unknown_is_resolved_by_check_back() {
    let _serial = serial();
    // Check every second for half messages older than one second (defaults: 60 s and 6 s).
    let mut cluster = Cluster::start("transactionCheckInterval=1000\ntransactionTimeOut=1000");
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicTx";
        let decider = Decider::default();
        let mut producer = TransactionMQProducer::builder(rt.clone())
            .client_config(client_config(&namesrv))
            .producer_group("PG_tx")
            .topics(vec![topic])
            .send_msg_timeout(10_000)
            .transaction_listener(decider.clone())
            .build();
        producer.start().await.expect("start the transaction producer");
        for outcome in OUTCOMES {
            for seq in 0..EACH {
                let s = seq.to_string();
                let msg = message(
                    topic,
                    Some("TagT"),
                    &[&format!("{outcome}-{seq}")],
                    format!("{outcome} {seq}").as_bytes(),
                    &[("outcome", outcome), ("seq", &s)],
                );
                let result = producer
                    .send_message_in_transaction::<(), _>(msg, None)
                    .await
                    .unwrap_or_else(|e| panic!("transactional send {outcome}-{seq}: {e}"));
                assert!(result.send_result.is_some(), "{outcome}-{seq}: no send result");
                let want = match outcome {
                    "commit" => LocalTransactionState::CommitMessage,
                    "rollback" => LocalTransactionState::RollbackMessage,
                    _ => LocalTransactionState::Unknown,
                };
                assert_eq!(result.local_transaction_state, Some(want), "{outcome}-{seq}");
            }
        }

        let inbox = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            "CG_tx",
            topic,
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&inbox)),
            |b| b,
        )
        .await;
        let arrived = eventually(ARRIVAL, || inbox.len() >= 2 * EACH).await;
        let checked = eventually(ARRIVAL, || {
            decider.checks.lock().unwrap().keys().filter(|k| k.starts_with("unknown")).count() >= EACH
        })
        .await;
        // Rolled-back messages must stay away for a few more check rounds.
        tokio::time::sleep(QUIET).await;
        consumer.shutdown().await;
        producer.shutdown().await;

        let mut delivered: Vec<String> = inbox
            .snapshot()
            .iter()
            .map(|r| format!("{}-{}", r.prop("outcome").unwrap_or("?"), r.prop("seq").unwrap_or("?")))
            .collect();
        delivered.sort();
        let mut want: Vec<String> =
            ["commit", "unknown"].iter().flat_map(|o| (0..EACH).map(move |s| format!("{o}-{s}"))).collect();
        want.sort();
        let checks = decider.checks.lock().unwrap().clone();
        if !arrived || !checked || delivered != want {
            failure = Some(format!("delivered {delivered:?}, want {want:?}; check-backs {checks:?}"));
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
}
