//! The client without a broker: batch and pull bodies, header fields, message ids.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::protocol::body::{BrokerData, QueueData};
use crate::remoting::{Connection, Handler, Server, ServerLimits};
use crate::store::format::{MessageInput, Placement, encode_record};

fn record(topic: &str, queue_offset: u64, physical_offset: u64, body: &[u8], properties: &str) -> Vec<u8> {
    let input = MessageInput {
        topic: topic.into(),
        queue_id: 3,
        flag: 7,
        body: body.to_vec(),
        properties: properties.into(),
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "10.0.0.5:40000".parse().unwrap(),
        store_host: "10.0.0.1:10911".parse().unwrap(),
        reconsume_times: 2,
        prepared_transaction_offset: 0,
    };
    let mut out = Vec::new();
    encode_record(&input, Placement { queue_offset, physical_offset, store_timestamp: 1_700_000_000_123 }, &mut out);
    out
}

#[test]
fn batch_body_has_the_java_layout_and_round_trips() {
    let m = Message::new("T", &b"abc"[..]).with_property("UNIQ_KEY", "ID1");
    let body = encode_batch(std::slice::from_ref(&m)).unwrap();
    let props = b"UNIQ_KEY\x01ID1";
    let mut want = Vec::new();
    want.extend_from_slice(&((20 + 3 + 2 + props.len()) as i32).to_be_bytes());
    want.extend_from_slice(&0i32.to_be_bytes());
    want.extend_from_slice(&0i32.to_be_bytes());
    want.extend_from_slice(&0i32.to_be_bytes());
    want.extend_from_slice(&3i32.to_be_bytes());
    want.extend_from_slice(b"abc");
    want.extend_from_slice(&(props.len() as i16).to_be_bytes());
    want.extend_from_slice(props);
    assert_eq!(&body[..], &want[..]);

    let msgs: Vec<Message> = (0..5)
        .map(|i| {
            let mut m = Message::new("T", vec![i as u8; i * 10 + 1]).with_tags("TagA").with_keys(["k1", "k2"]);
            m.flag = i as i32;
            m.with_property("UNIQ_KEY", format!("ID{i}"))
        })
        .collect();
    let body = encode_batch(&msgs).unwrap();
    let back = decode_batch(&body).unwrap();
    assert_eq!(back.len(), 5);
    for (a, b) in msgs.iter().zip(&back) {
        assert_eq!(a.body, b.body);
        assert_eq!(a.flag, b.flag);
        assert_eq!(a.properties(), b.properties());
        assert_eq!(b.keys().collect::<Vec<_>>(), ["k1", "k2"]);
    }
}

#[test]
fn batch_decoder_refuses_bad_lengths_without_panicking() {
    let body = encode_batch(&[Message::new("T", &b"hello"[..])]).unwrap();
    for cut in 1..body.len() {
        assert!(decode_batch(&body.slice(..cut)).is_err(), "cut {cut}");
    }
    let mut seed = 0x1234_5678_u64;
    for len in 0..400 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = decode_batch(&Bytes::from(bytes));
    }
}

#[test]
fn pull_bodies_decode_into_messages_sharing_the_buffer() {
    let mut body =
        record("TopicA", 5, 1000, b"first", "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}UNIQ_KEY\u{1}ABCD\u{2}color\u{1}red");
    let first_len = body.len() as u64;
    body.extend(record("TopicA", 6, 1000 + first_len, b"", "TAGS\u{1}TagB"));
    let body = Bytes::from(body);
    let msgs = decode_messages(&body, true).unwrap();
    assert_eq!(msgs.len(), 2);
    let m = &msgs[0];
    assert_eq!(m.topic, "TopicA");
    assert_eq!((m.queue_id, m.queue_offset, m.commit_log_offset), (3, 5, 1000));
    assert_eq!(m.store_size as u64, first_len);
    assert_eq!(&m.body[..], b"first");
    assert_eq!(m.body.as_ptr(), body[m.body.as_ptr() as usize - body.as_ptr() as usize..].as_ptr());
    assert_eq!(m.tags(), Some("TagA"));
    assert_eq!(m.keys().collect::<Vec<_>>(), ["k1", "k2"]);
    assert_eq!(m.property("color"), Some("red"));
    assert_eq!(m.msg_id(), "ABCD");
    assert_eq!(
        (m.born_timestamp, m.store_timestamp, m.reconsume_times, m.flag),
        (1_700_000_000_000, 1_700_000_000_123, 2, 7)
    );
    assert_eq!(m.born_host, "10.0.0.5:40000".parse::<SocketAddr>().unwrap());
    let second = &msgs[1];
    assert!(second.body.is_empty());
    // Without a UNIQ_KEY the id is the offset id, which decodes back to host and offset.
    assert_eq!(second.msg_id(), second.offset_msg_id());
    let (host, offset) = crate::protocol::message_id::decode_offset_msg_id(&second.msg_id()).unwrap();
    assert_eq!((host, offset), ("10.0.0.1:10911".parse().unwrap(), 1000 + first_len));
    assert!(decode_messages(&Bytes::new(), true).unwrap().is_empty());
}

#[test]
fn pull_decoder_reports_truncation_corruption_and_crc() {
    let rec = record("T", 0, 0, b"payload", "");
    for cut in 1..rec.len() {
        assert!(decode_messages(&Bytes::copy_from_slice(&rec[..cut]), false).is_err(), "cut {cut}");
    }
    let mut bad_crc = rec.clone();
    let body_at = bad_crc.len() - 2 - 1 - 1 - 7; // props len, topic "T", topic len, body
    bad_crc[body_at] ^= 0xFF;
    assert!(decode_messages(&Bytes::from(bad_crc.clone()), true).is_err());
    assert_eq!(decode_messages(&Bytes::from(bad_crc), false).unwrap().len(), 1);
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for len in 0..600 {
        let mut bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        if len >= 8 {
            // A plausible length and the magic, so the field checks are reached.
            bytes[..4].copy_from_slice(&(len as u32).to_be_bytes());
            bytes[4..8].copy_from_slice(&crate::store::format::MESSAGE_MAGIC.to_be_bytes());
        }
        let _ = decode_messages(&Bytes::from(bytes), true);
    }
}

#[test]
fn tag_hashes_and_subscriptions_match_java() {
    assert_eq!(java_string_hash("TagA"), 2598919);
    assert_eq!(java_string_hash(""), 0);
    assert_eq!(java_string_hash("\u{e9}t\u{e9}"), 'é' as i32 * 961 + 't' as i32 * 31 + 'é' as i32);
    let s = consumer::tag_subscription("T", " TagA || TagB ||TagA");
    assert_eq!(s.sub_string, "TagA || TagB ||TagA");
    assert_eq!(s.tags_set, ["TagA", "TagB"]);
    assert_eq!(s.code_set, [2598919, java_string_hash("TagB")]);
    let all = consumer::tag_subscription("T", "*");
    assert_eq!(all.sub_string, "*");
    assert!(all.tags_set.is_empty());
}

#[test]
fn pull_request_carries_every_header_field() {
    let client = MqClient::new(ClientConfig::new("127.0.0.1:1"));
    let mq = MessageQueue { broker_name: "b".into(), queue_id: 2, topic: "T".into() };
    let mut req = PullRequest::new("g", mq, 77);
    req.commit_offset = 70;
    req.sys_flag |= pull_flag::COMMIT_OFFSET;
    req.sub_version = 123;
    let cmd = req.to_command(&client);
    assert_eq!(cmd.code, 11);
    let fields: Vec<(&str, &str)> = cmd.ext_fields.iter().collect();
    assert_eq!(
        fields,
        [
            ("consumerGroup", "g"),
            ("topic", "T"),
            ("queueId", "2"),
            ("queueOffset", "77"),
            ("maxMsgNums", "32"),
            ("sysFlag", "7"),
            ("commitOffset", "70"),
            ("suspendTimeoutMillis", "15000"),
            ("subscription", "*"),
            ("subVersion", "123"),
            ("expressionType", "TAG"),
        ]
    );
}

#[test]
fn send_responses_map_codes_to_statuses_or_errors() {
    let mq = MessageQueue { broker_name: "b".into(), queue_id: 1, topic: "T".into() };
    for (code, status) in [
        (0, SendStatus::SendOk),
        (10, SendStatus::FlushDiskTimeout),
        (11, SendStatus::SlaveNotAvailable),
        (12, SendStatus::FlushSlaveTimeout),
    ] {
        let resp = RemotingCommand::response(code)
            .with_field("msgId", "0A00000100002A9F0000000000000064")
            .with_field("queueId", 3)
            .with_field("queueOffset", 9);
        let r = producer::parse_send_response("a", &resp, &mq, "UNIQ").unwrap();
        assert_eq!(r.status, status);
        assert_eq!((r.queue.queue_id, r.queue_offset, r.msg_id.as_str()), (3, 9, "UNIQ"));
        assert_eq!(r.offset_msg_id, "0A00000100002A9F0000000000000064");
    }
    let err = producer::parse_send_response("a", &RemotingCommand::error(13, "too big"), &mq, "U").unwrap_err();
    assert!(matches!(&err, Error::Broker { code: 13, remark, .. } if remark == "too big"), "{err}");
    let no_offset = RemotingCommand::response(0).with_field("queueId", 1);
    assert!(matches!(producer::parse_send_response("a", &no_offset, &mq, "U"), Err(Error::Decode { .. })));
    let bad = RemotingCommand::response(0).with_field("queueOffset", "x");
    assert!(matches!(producer::parse_send_response("a", &bad, &mq, "U"), Err(Error::Decode { .. })));
}

/// A name server and broker in one: answers routes for `Known` and `TBW102`, sends, pulls and
/// offsets, and records every request.
struct FakeCluster {
    addr: Mutex<String>,
    seen: Mutex<Vec<RemotingCommand>>,
}

impl FakeCluster {
    fn route(&self, queues: u32, perm: u32) -> Vec<u8> {
        let addr = self.addr.lock().unwrap().clone();
        let route = TopicRouteData {
            broker_datas: vec![BrokerData {
                broker_addrs: [(0, addr)].into_iter().collect(),
                broker_name: "broker-a".into(),
                cluster: "C".into(),
                enable_acting_master: false,
            }],
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                perm,
                read_queue_nums: queues,
                write_queue_nums: queues,
                topic_sys_flag: 0,
            }],
            ..TopicRouteData::default()
        };
        crate::protocol::body::to_json(&route)
    }

    fn seen(&self, code: i32) -> Vec<RemotingCommand> {
        self.seen.lock().unwrap().iter().filter(|c| c.code == code).cloned().collect()
    }
}

impl Handler for FakeCluster {
    fn handle(&self, conn: Connection, req: RemotingCommand) -> impl Future<Output = Option<RemotingCommand>> + Send {
        self.seen.lock().unwrap().push(req.clone());
        let resp = match req.code {
            // Test hook: ask the client about a half message of group `pg`.
            999 => {
                let body = record("Known", 0, 4096, b"half", "PGROUP\u{1}pg\u{2}UNIQ_KEY\u{1}U1\u{2}TRAN_MSG\u{1}true");
                let check = RemotingCommand::request(39)
                    .with_field("tranStateTableOffset", 5)
                    .with_field("commitLogOffset", 4096)
                    .with_field("msgId", "U1")
                    .with_field("transactionId", "U1")
                    .with_body(body);
                conn.send_oneway(check);
                RemotingCommand::response(0)
            }
            105 => match req.field("topic") {
                Some("Known") => RemotingCommand::response(0).with_body(self.route(2, 6)),
                Some("TBW102") => RemotingCommand::response(0).with_body(self.route(8, 7)),
                _ => RemotingCommand::error(17, "No topic route info in name server for the topic"),
            },
            310 | 320 => match req.field("b") {
                Some("Bad") => RemotingCommand::error(13, "the message is illegal"),
                Some("Slow") => RemotingCommand::response(10).with_field("queueId", 0).with_field("queueOffset", 1),
                _ => RemotingCommand::response(0)
                    .with_field("msgId", "0A00000100002A9F0000000000000064")
                    .with_field("queueId", req.field("e").unwrap_or("0"))
                    .with_field("queueOffset", 100),
            },
            11 => {
                let mut body = record("Known", 100, 0, b"one", "TAGS\u{1}TagA");
                let n = body.len() as u64;
                body.extend(record("Known", 101, n, b"two", "TAGS\u{1}TagB"));
                RemotingCommand::response(0)
                    .with_field("nextBeginOffset", 102)
                    .with_field("minOffset", 0)
                    .with_field("maxOffset", 102)
                    .with_field("suggestWhichBrokerId", 0)
                    .with_body(body)
            }
            14 => RemotingCommand::error(22, "Not found"),
            30 => RemotingCommand::response(0).with_field("offset", 42),
            _ => RemotingCommand::response(0),
        };
        async move { Some(resp) }
    }
}

async fn fake_cluster() -> (Server, Arc<FakeCluster>, MqClient) {
    let fake = Arc::new(FakeCluster { addr: Mutex::new(String::new()), seen: Mutex::new(Vec::new()) });
    let server = Server::bind("127.0.0.1:0", ServerLimits::default(), fake.clone()).await.unwrap();
    let addr = server.local_addr().to_string();
    *fake.addr.lock().unwrap() = addr.clone();
    // The first name server refuses connections: the client moves on to the second.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut config = ClientConfig::new(format!("{dead};{addr}"));
    config.request_timeout = Duration::from_secs(5);
    (server, fake, MqClient::new(config))
}

#[tokio::test]
async fn sync_send_fills_the_v2_header_like_java() {
    let (_server, fake, client) = fake_cluster().await;
    let producer = Producer::new(client.clone(), "pg");
    let msg = Message::new("Known", "hello").with_tags("TagA").with_keys(["k1"]).with_property("color", "red");
    let r = producer.send(msg).await.unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(r.queue.broker_name, "broker-a");
    assert_eq!(r.queue_offset, 100);
    assert_eq!(r.msg_id.len(), 32);
    let sent = fake.seen(310);
    let req = &sent[0];
    for (k, v) in [
        ("a", "pg"),
        ("b", "Known"),
        ("c", "TBW102"),
        ("d", "4"),
        ("f", "0"),
        ("h", "0"),
        ("j", "0"),
        ("k", "false"),
        ("m", "false"),
    ] {
        assert_eq!(req.field(k), Some(v), "field {k}");
    }
    assert!(req.field("e").unwrap().parse::<u32>().unwrap() < 2);
    assert!(req.field("g").unwrap().parse::<i64>().unwrap() > 1_600_000_000_000);
    assert_eq!(req.field("l"), None);
    let props = crate::protocol::parse_properties(req.field("i").unwrap());
    assert!(props.contains(&("TAGS".into(), "TagA".into())));
    assert!(props.contains(&("KEYS".into(), "k1".into())));
    assert!(props.contains(&("color".into(), "red".into())));
    assert!(props.contains(&("UNIQ_KEY".into(), r.msg_id.clone())));
    assert_eq!(&req.body[..], b"hello");

    // Round robin over the two queues.
    let q2 = producer.send(Message::new("Known", "x")).await.unwrap().queue.queue_id;
    assert_ne!(q2, r.queue.queue_id);
    // Non-fatal codes are statuses, others errors with code and remark.
    assert_eq!(producer.send(Message::new("Slow", "x")).await.unwrap().status, SendStatus::FlushDiskTimeout);
    let err = producer.send(Message::new("Bad", "x")).await.unwrap_err();
    assert_eq!(err.code(), Some(13));
    assert!(err.to_string().contains("the message is illegal"));
    // Refused before sending.
    assert!(matches!(producer.send(Message::new("Known", "")).await, Err(Error::Invalid(_))));
    assert!(matches!(producer.send(Message::new("bad topic", "x")).await, Err(Error::Invalid(_))));
}

#[tokio::test]
async fn unknown_topics_borrow_the_tbw102_route() {
    let (_server, fake, client) = fake_cluster().await;
    let producer = Producer::new(client.clone(), "pg");
    let queues = producer.publish_queues("Fresh").await.unwrap();
    assert_eq!(queues.len(), 4, "min(defaultTopicQueueNums, TBW102's queues)");
    assert!(queues.iter().all(|q| q.topic == "Fresh"));
    producer.send(Message::new("Fresh", "x")).await.unwrap();
    let req = fake.seen(310).pop().unwrap();
    assert_eq!((req.field("b"), req.field("c"), req.field("d")), (Some("Fresh"), Some("TBW102"), Some("4")));
    let routes: Vec<_> = fake.seen(105).iter().map(|c| c.field("topic").unwrap().to_owned()).collect();
    assert!(routes.starts_with(&["Fresh".to_owned(), "TBW102".to_owned()]), "{routes:?}");
    // Fetching the real route fails with NoRoute.
    assert!(matches!(client.fetch_route("Fresh").await, Err(Error::NoRoute { .. })));
}

#[tokio::test]
async fn batch_oneway_and_async_sends() {
    let (_server, fake, client) = fake_cluster().await;
    let producer = Producer::new(client.clone(), "pg");
    let batch: Vec<Message> = (0..3).map(|i| Message::new("Known", format!("m{i}")).with_tags("T")).collect();
    let r = producer.send_batch(batch).await.unwrap();
    assert_eq!(r.msg_id.split(',').count(), 3);
    let req = fake.seen(320).pop().unwrap();
    assert_eq!(req.field("m"), Some("true"));
    let items = decode_batch(&req.body).unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items.iter().map(|m| m.unique_id().unwrap()).collect::<Vec<_>>().join(","), r.msg_id);
    assert!(matches!(
        producer.send_batch(vec![Message::new("Known", "a"), Message::new("Other", "b")]).await,
        Err(Error::Invalid(_))
    ));

    producer.send_oneway(Message::new("Known", "ow")).await.unwrap();
    let futures: Vec<_> = (0..50).map(|i| producer.send_async(Message::new("Known", format!("a{i}")))).collect();
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap().status, SendStatus::SendOk);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fake.seen(310).iter().any(|c| c.is_oneway() && &c.body[..] == b"ow"));
}

#[tokio::test]
async fn pulls_offsets_and_heartbeats() {
    let (_server, fake, client) = fake_cluster().await;
    let consumer = PullConsumer::new(client.clone(), "cg");
    consumer.subscribe("Known", "TagA");
    let queues = consumer.queues("Known").await.unwrap();
    assert_eq!(queues.len(), 2);
    let r = consumer.pull(&queues[1], 100).await.unwrap();
    assert_eq!(r.status, PullStatus::Found);
    assert_eq!((r.next_begin_offset, r.max_offset), (102, 102));
    // TagB was dropped by the client-side tag filter.
    assert_eq!(r.messages.len(), 1);
    assert_eq!(&r.messages[0].body[..], b"one");
    let req = fake.seen(11).pop().unwrap();
    assert_eq!(req.field("subscription"), Some("TagA"));
    assert_eq!(req.field("sysFlag"), Some("6"));
    assert_eq!(req.field("queueId"), Some("1"));

    assert_eq!(consumer.fetch_consume_offset(&queues[0]).await.unwrap(), None);
    assert_eq!(consumer.start_offset(&queues[0]).await.unwrap(), 42);
    consumer.commit_offset(&queues[0], 50).await.unwrap();
    assert_eq!(client.heartbeat().await.unwrap(), 1);
    let hb = fake.seen(34).pop().unwrap();
    let data: crate::protocol::body::HeartbeatData = crate::protocol::body::parse(&hb.body).unwrap();
    assert_eq!(data.client_id, client.client_id());
    assert_eq!(data.consumer_data_set[0].group_name, "cg");
    assert_eq!(data.consumer_data_set[0].subscription_data_set[0].code_set, [2598919]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let upd = fake.seen(15).pop().unwrap();
    assert_eq!((upd.field("consumerGroup"), upd.field("commitOffset")), (Some("cg"), Some("50")));
}

#[tokio::test]
async fn no_name_server_and_dead_name_servers_are_errors() {
    let client = MqClient::new(ClientConfig::new(""));
    assert!(matches!(client.fetch_route("T").await, Err(Error::NoNameServer)));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let client = MqClient::new(ClientConfig::new(dead.to_string()));
    assert!(matches!(client.fetch_route("T").await, Err(Error::Remoting(_))));
}

struct Decide(TransactionState);

impl TransactionListener for Decide {
    fn check(&self, msg: &MessageExt) -> TransactionState {
        assert_eq!(&msg.body[..], b"half");
        self.0
    }
}

#[tokio::test]
async fn transactions_end_after_the_local_decision_and_answer_checks() {
    let (_server, fake, client) = fake_cluster().await;
    let producer = Producer::new(client.clone(), "pg");
    producer.set_transaction_listener(Arc::new(Decide(TransactionState::Rollback)));
    let r = producer
        .send_in_transaction(Message::new("Known", "tx").with_delay_level(3), |m, _| {
            assert_eq!(m.property("TRAN_MSG"), Some("true"));
            TransactionState::Commit
        })
        .await
        .unwrap();
    assert_eq!(r.state, TransactionState::Commit);
    let half = fake.seen(310).pop().unwrap();
    assert_eq!(half.field("f"), Some("4"));
    let props = half.field("i").unwrap();
    assert_eq!(crate::protocol::property(props, "PGROUP"), Some("pg"));
    assert_eq!(crate::protocol::property(props, "DELAY"), None);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let end = fake.seen(37).pop().unwrap();
    assert!(end.is_oneway());
    for (k, v) in [
        ("producerGroup", "pg"),
        ("tranStateTableOffset", "100"),
        ("commitLogOffset", "100"),
        ("commitOrRollback", "8"),
        ("fromTransactionCheck", "false"),
    ] {
        assert_eq!(end.field(k), Some(v), "{k}");
    }
    assert_eq!(end.field("msgId"), Some(r.send.msg_id.as_str()));

    // The broker asks; the listener says rollback.
    let addr = client.master_addr("broker-a").unwrap();
    client.invoke_broker_ok(&addr, RemotingCommand::request(999)).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let end = loop {
        if let Some(e) = fake.seen(37).into_iter().find(|c| c.field("fromTransactionCheck") == Some("true")) {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "no END_TRANSACTION after the check");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (k, v) in [
        ("producerGroup", "pg"),
        ("tranStateTableOffset", "5"),
        ("commitLogOffset", "4096"),
        ("commitOrRollback", "12"),
        ("msgId", "U1"),
        ("transactionId", "U1"),
    ] {
        assert_eq!(end.field(k), Some(v), "{k}");
    }
}

#[test]
fn unique_ids_have_the_java_shape_and_differ() {
    let client = MqClient::new(ClientConfig { client_ip: Some("10.1.2.3".parse().unwrap()), ..ClientConfig::new("") });
    let a = client.new_unique_id();
    let b = client.new_unique_id();
    assert_eq!(a.len(), 32);
    assert!(a.starts_with("0A010203"));
    assert!(a.bytes().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)));
    assert_ne!(a, b);
    assert_eq!(a[..20], b[..20]);
}
