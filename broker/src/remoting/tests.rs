//! Frames, header encodings, limits and the server/client pair, over real sockets.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};

use super::*;

fn sample(serialize_type: SerializeType) -> RemotingCommand {
    let mut c = RemotingCommand::request(310)
        .with_field("a", "pg")
        .with_field("b", "TopicTest")
        .with_field("i", "TAGS\u{1}TagA\u{2}KEYS\u{1}k \"1\"")
        .with_body(&b"hello"[..]);
    c.opaque = 42;
    c.serialize_type = serialize_type;
    c.remark = Some("r\u{e9}mark".into());
    c
}

#[test]
fn frames_round_trip_in_both_encodings() {
    for st in [SerializeType::Json, SerializeType::RocketMq] {
        let cmd = sample(st);
        let mut buf = BytesMut::new();
        cmd.encode_frame(&mut buf);
        cmd.encode_frame(&mut buf);
        let dec = FrameDecoder::default();
        let a = dec.decode(&mut buf).unwrap().unwrap();
        let b = dec.decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        for got in [a, b] {
            assert_eq!(got.code, 310);
            assert_eq!(got.opaque, 42);
            assert_eq!(got.field("b"), Some("TopicTest"));
            assert_eq!(got.field("i"), cmd.field("i"));
            assert_eq!(got.remark.as_deref(), Some("r\u{e9}mark"));
            assert_eq!(&got.body[..], b"hello");
            assert_eq!(got.serialize_type, st);
        }
    }
}

#[test]
fn partial_frames_wait_for_more_bytes() {
    let mut whole = BytesMut::new();
    sample(SerializeType::Json).encode_frame(&mut whole);
    let dec = FrameDecoder::default();
    for cut in 0..whole.len() {
        let mut part = BytesMut::from(&whole[..cut]);
        assert!(dec.decode(&mut part).unwrap().is_none(), "cut at {cut}");
    }
}

#[test]
fn json_header_accepts_numbers_booleans_and_unknown_languages() {
    let header = br#"{"code":310,"extFields":{"e":0,"k":false,"b":"T","n":null},"flag":0,"language":"NODE_JS","opaque":7,"version":121}"#;
    let cmd = RemotingCommand::decode_header(SerializeType::Json, header).unwrap();
    assert_eq!(cmd.field("e"), Some("0"));
    assert_eq!(cmd.field("k"), Some("false"));
    assert_eq!(cmd.field("n"), None);
    assert_eq!(cmd.language_name(), "NODE_JS");
    let odd = br#"{"code":1,"language":"COBOL","opaque":1,"flag":0}"#;
    assert_eq!(RemotingCommand::decode_header(SerializeType::Json, odd).unwrap().language_name(), "OTHER");
}

#[test]
fn json_header_is_written_as_fastjson_writes_it() {
    let mut c = RemotingCommand::request(105).with_field("topic", "TBW102");
    c.opaque = 1;
    assert_eq!(
        String::from_utf8(c.encode_header()).unwrap(),
        r#"{"code":105,"extFields":{"topic":"TBW102"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":401}"#
    );
}

/// Each malformed input is an error, never a panic and never a huge allocation.
#[test]
fn bad_frames_are_errors() {
    let cases: &[(&str, Vec<u8>)] = &[
        ("length over the limit", [(FRAME_BYTES_MAX as u32 + 1).to_be_bytes(), [0; 4]].concat()),
        ("length 0xFFFFFFFF", vec![0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]),
        ("length below the header word", vec![0, 0, 0, 2, 0, 0]),
        ("header longer than the frame", [8u32.to_be_bytes(), 100u32.to_be_bytes(), [0; 4]].concat()),
        ("unknown serialize type", [8u32.to_be_bytes(), (7u32 << 24 | 4).to_be_bytes(), *b"{}{}"].concat()),
        ("garbage JSON", [8u32.to_be_bytes(), 4u32.to_be_bytes(), *b"GET "].concat()),
        (
            "binary header cut short",
            [7u32.to_be_bytes(), (1u32 << 24 | 3).to_be_bytes()].concat().into_iter().chain([0, 1, 2]).collect(),
        ),
    ];
    for (name, bytes) in cases {
        let mut buf = BytesMut::from(&bytes[..]);
        assert!(FrameDecoder::default().decode(&mut buf).is_err(), "{name}");
    }
    // A binary header whose extFields length lies.
    let mut h = BytesMut::new();
    h.put_i16(10);
    h.put_u8(0);
    h.put_i16(401);
    h.put_i32(1);
    h.put_i32(0);
    h.put_i32(0);
    h.put_i32(1_000_000);
    assert!(RemotingCommand::decode_header(SerializeType::RocketMq, &h).is_err());
}

#[test]
fn random_bytes_never_panic() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..20_000 {
        let mut bytes = Vec::new();
        let len = (seed % 64) as usize;
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(seed as u8);
        }
        // Keep lengths plausible half the time so the header parsers get exercised.
        if bytes.len() >= 8 && seed.is_multiple_of(2) {
            let total = (bytes.len() - 4) as u32;
            bytes[..4].copy_from_slice(&total.to_be_bytes());
            let hl = (seed as u32 % (total.max(5) - 4 + 1)) | ((seed as u32 >> 8) & 1) << 24;
            bytes[4..8].copy_from_slice(&hl.to_be_bytes());
        }
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = FrameDecoder::default().decode(&mut buf);
    }
}

struct Echo;

impl Handler for Echo {
    async fn handle(&self, conn: Connection, request: RemotingCommand) -> Option<RemotingCommand> {
        if request.code == 40 {
            conn.send_oneway(RemotingCommand::request(40).with_field("consumerGroup", "g"));
            return None;
        }
        if request.code == 999 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Some(RemotingCommand::response(0).with_field("echo", request.code).with_body(request.body))
    }
}

#[tokio::test]
async fn client_and_server_correlate_by_opaque() {
    let server = Server::bind("127.0.0.1:0", ServerLimits::default(), Arc::new(Echo)).await.unwrap();
    let addr = server.local_addr().to_string();
    let client = Client::default();
    // A slow request does not hold up the quick ones behind it on the same connection.
    let slow = {
        let client = client.clone();
        let addr = addr.clone();
        tokio::spawn(async move { client.invoke(&addr, RemotingCommand::request(999), Duration::from_secs(5)).await })
    };
    for code in (1..50).filter(|c| *c != 40) {
        let r = client
            .invoke(&addr, RemotingCommand::request(code).with_body(vec![code as u8; 10]), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.field("echo"), Some(code.to_string().as_str()));
        assert_eq!(&r.body[..], &[code as u8; 10][..]);
    }
    assert!(!slow.is_finished());
    assert_eq!(slow.await.unwrap().unwrap().field("echo"), Some("999"));
    // ROCKETMQ-encoded requests get ROCKETMQ-encoded responses.
    let mut req = RemotingCommand::request(7);
    req.serialize_type = SerializeType::RocketMq;
    let r = client.invoke(&addr, req, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.serialize_type, SerializeType::RocketMq);
}

#[tokio::test]
async fn server_to_client_requests_reach_the_callback() {
    let server = Server::bind("127.0.0.1:0", ServerLimits::default(), Arc::new(Echo)).await.unwrap();
    let addr = server.local_addr().to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let options = ClientOptions {
        on_request: Some(Arc::new(move |_: &str, cmd: RemotingCommand| {
            let _ = tx.send(cmd);
            None
        })),
        ..ClientOptions::default()
    };
    let client = Client::new(options);
    client.invoke_oneway(&addr, RemotingCommand::request(40)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert_eq!(got.code, 40);
    assert!(got.is_oneway());
    assert_eq!(got.field("consumerGroup"), Some("g"));
}

#[tokio::test]
async fn limits_close_connections_and_spare_others() {
    let limits = ServerLimits { connections_max: 2, idle_timeout_ms: 300, ..ServerLimits::default() };
    let server = Server::bind("127.0.0.1:0", limits, Arc::new(Echo)).await.unwrap();
    let addr = server.local_addr().to_string();
    let good = Client::default();
    good.invoke(&addr, RemotingCommand::request(1), Duration::from_secs(5)).await.unwrap();

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A garbage frame closes that connection only.
    let mut bad = tokio::net::TcpStream::connect(&addr).await.unwrap();
    bad.write_all(b"\x7f\xff\xff\xffGARBAGE").await.unwrap();
    let mut sink = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), bad.read_to_end(&mut sink)).await.unwrap().unwrap();
    assert_eq!(n, 0);
    good.invoke(&addr, RemotingCommand::request(2), Duration::from_secs(5)).await.unwrap();

    // Over the connection limit: closed at once. (Slot of `bad` may take a moment to free.)
    let mut holder = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut sink)).await.unwrap().unwrap();
    assert_eq!(n, 0);
    // Idle connections are closed after the idle timeout.
    let n = tokio::time::timeout(Duration::from_secs(5), holder.read_to_end(&mut sink)).await.unwrap().unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn closing_a_client_connection_closes_the_socket() {
    struct Count(std::sync::atomic::AtomicUsize);
    impl Handler for Count {
        async fn handle(&self, _conn: Connection, _request: RemotingCommand) -> Option<RemotingCommand> {
            Some(RemotingCommand::response(0))
        }
        fn connection_closed(&self, _conn: &Connection) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let handler = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
    let server = Server::bind("127.0.0.1:0", ServerLimits::default(), handler.clone()).await.unwrap();
    let addr = server.local_addr().to_string();
    let client = Client::default();
    client.invoke(&addr, RemotingCommand::request(1), Duration::from_secs(5)).await.unwrap();
    client.close(&addr);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while handler.0.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "the server never saw the connection close");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The next request opens a new connection.
    client.invoke(&addr, RemotingCommand::request(2), Duration::from_secs(5)).await.unwrap();
}
