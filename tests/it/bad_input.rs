//! Bad input on the native door: each malformed or refused request gets its response code or a
//! closed connection, and a well-behaved client on another connection keeps being served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use broker::protocol::{request, response};
use broker::remoting::{FrameDecoder, RemotingCommand};
use bytes::BytesMut;

use crate::support::{Process, START_TIMEOUT, free_broker_port, write_config};

/// A blocking remoting connection for tests.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    opaque: i32,
}

impl Conn {
    pub(crate) fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn { stream, buf: BytesMut::new(), opaque: 0 }
    }

    pub(crate) fn call(&mut self, mut cmd: RemotingCommand) -> RemotingCommand {
        self.opaque += 1;
        cmd.opaque = self.opaque;
        let mut out = BytesMut::new();
        cmd.encode_frame(&mut out);
        self.stream.write_all(&out).unwrap();
        loop {
            if let Some(r) = FrameDecoder::default().decode(&mut self.buf).unwrap() {
                assert_eq!(r.opaque, self.opaque);
                return r;
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed while waiting for a response");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Writes raw bytes and expects the broker to close the connection.
    fn expect_closed_after(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        let mut sink = Vec::new();
        match self.stream.read_to_end(&mut sink) {
            Ok(_) => assert!(sink.is_empty(), "no response to a bad frame, got {} bytes", sink.len()),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
}

/// A SEND_MESSAGE_V2 request as a producer writes it (tag `t`).
pub(crate) fn send(topic: &str, body: Vec<u8>) -> RemotingCommand {
    RemotingCommand::request(request::SEND_MESSAGE_V2)
        .with_field("a", "bad_input_pg")
        .with_field("b", topic)
        .with_field("c", "TBW102")
        .with_field("d", 4)
        .with_field("e", 0)
        .with_field("f", 0)
        .with_field("g", 0)
        .with_field("h", 0)
        .with_field("i", "TAGS\u{1}t")
        .with_body(body)
}

/// The well-behaved client: a send and a pull of what it sent, on its own connection.
fn round_trip(good: &mut Conn, n: u64) {
    let r = good.call(send("GoodTopic", format!("m{n}").into_bytes()));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let offset = r.field("queueOffset").unwrap().to_owned();
    let pull = RemotingCommand::request(request::PULL_MESSAGE)
        .with_field("consumerGroup", "bad_input_cg")
        .with_field("topic", "GoodTopic")
        .with_field("queueId", 0)
        .with_field("queueOffset", &offset)
        .with_field("maxMsgNums", 1)
        .with_field("sysFlag", 4 | 2)
        .with_field("commitOffset", 0)
        .with_field("suspendTimeoutMillis", 10_000)
        .with_field("subscription", "*")
        .with_field("subVersion", 0);
    let r = good.call(pull);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let want = format!("m{n}");
    assert!(r.body.windows(want.len()).any(|w| w == want.as_bytes()), "the pulled record holds the body {want}");
}

#[test]
fn bad_input_gets_its_code_or_a_closed_connection_and_spares_other_clients() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_broker_port();
    let config = write_config(dir.path(), &format!("listenPort={port}\nbrokerIP1=127.0.0.1\nmaxMessageSize=1024"));
    let mut broker = Process::start(&config);
    broker.wait_for("Broker started", START_TIMEOUT);
    let addr = format!("127.0.0.1:{port}");
    let mut good = Conn::open(&addr);
    round_trip(&mut good, 0);

    // (what, raw bytes) that must close the connection.
    let header_too_long = [8u32.to_be_bytes(), 1000u32.to_be_bytes(), *b"{}{}"].concat();
    let over_limit = [(16 * 1024 * 1024u32 + 1).to_be_bytes(), 4u32.to_be_bytes()].concat();
    let closing: [(&str, Vec<u8>); 4] = [
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("frame over 16 MiB", over_limit),
        ("header length larger than the frame", header_too_long),
        (
            "JSON header that is not JSON",
            [9u32.to_be_bytes(), 5u32.to_be_bytes(), *b"{{{{"].concat().into_iter().chain([b'x']).collect(),
        ),
    ];
    for (i, (what, bytes)) in closing.iter().enumerate() {
        let mut bad = Conn::open(&addr);
        bad.expect_closed_after(bytes);
        round_trip(&mut good, i as u64 + 1);
        eprintln!("closed after {what}");
    }

    // (what, request, expected code) answered on the same connection.
    let answered = [
        ("unknown request code", RemotingCommand::request(4242), response::REQUEST_CODE_NOT_SUPPORTED),
        ("message over maxMessageSize", send("GoodTopic", vec![b'x'; 2048]), response::MESSAGE_ILLEGAL),
        ("invalid topic name", send("bad topic!", b"x".to_vec()), response::SYSTEM_ERROR),
        ("topic name over 127 bytes", send(&"t".repeat(128), b"x".to_vec()), response::SYSTEM_ERROR),
        ("sending to a system topic", send("SCHEDULE_TOPIC_XXXX", b"x".to_vec()), response::NO_PERMISSION),
        (
            "send without its queue id",
            RemotingCommand::request(request::SEND_MESSAGE_V2).with_field("a", "g").with_field("b", "T"),
            response::SYSTEM_ERROR,
        ),
        (
            "pull of an unknown topic",
            RemotingCommand::request(request::PULL_MESSAGE)
                .with_field("consumerGroup", "g")
                .with_field("topic", "NoSuchTopic")
                .with_field("queueId", 0)
                .with_field("queueOffset", 0)
                .with_field("maxMsgNums", 1)
                .with_field("sysFlag", 4)
                .with_field("commitOffset", 0)
                .with_field("suspendTimeoutMillis", 0)
                .with_field("subVersion", 0)
                .with_field("subscription", "*"),
            response::TOPIC_NOT_EXIST,
        ),
        (
            "malformed batch body",
            send("GoodTopic", vec![0, 0, 0, 99, 1, 2]).with_field("m", "true"),
            response::MESSAGE_ILLEGAL,
        ),
    ];
    let mut bad = Conn::open(&addr);
    for (i, (what, req, code)) in answered.into_iter().enumerate() {
        let r = bad.call(req);
        assert_eq!(r.code, code, "{what}: {:?}", r.remark);
        assert!(r.remark.as_deref().is_some_and(|s| !s.is_empty()), "{what}: a remark explains the refusal");
        round_trip(&mut good, 100 + i as u64);
    }
    // The broker is still healthy and shuts down cleanly.
    let status = broker.terminate();
    assert!(status.success(), "{}", broker.drain());
}
