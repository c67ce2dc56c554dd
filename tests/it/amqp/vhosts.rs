//! Virtual hosts and users from `amqpUsers`: a table of (user, password, vhost) → opened or
//! refused with 530 and RabbitMQ's text (through lapin and on a raw socket), and two vhosts
//! holding same-named queues and exchanges apart.

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{AMQPClass, connection as amqp_connection};
use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

use super::{DELIVERY_WAIT, Door, Raw, code, declare_opts, drain, publish, queue};

/// What the server answered to `connection.open`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Opened {
    Ok,
    Closed(u16, String),
}

impl Raw {
    /// Logs in with PLAIN (advertising the `connection.blocked` capability when `blocked` is
    /// set) and opens `vhost`; the connection, or the code and text it was closed with.
    pub(super) fn open(port: u16, user: &str, pass: &str, vhost: &str, blocked: bool) -> (Raw, Opened) {
        let mut r = Raw::connect(port);
        std::io::Write::write_all(&mut r.s, b"AMQP\x00\x00\x09\x01").unwrap();
        assert!(matches!(
            r.next(),
            Some(AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::Start(_))))
        ));
        let mut client_properties = FieldTable::default();
        if blocked {
            let mut caps = FieldTable::default();
            caps.insert("connection.blocked".into(), AMQPValue::Boolean(true));
            client_properties.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        }
        let ok = amqp_connection::StartOk {
            client_properties,
            mechanism: "PLAIN".into(),
            response: format!("\0{user}\0{pass}").into(),
            locale: "en_US".into(),
        };
        r.send(&AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::StartOk(ok))));
        let tune = match r.next() {
            Some(AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::Tune(t)))) => t,
            Some(AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::Close(c)))) => {
                return (r, Opened::Closed(c.reply_code, c.reply_text.as_str().to_owned()));
            }
            other => panic!("expected connection.tune, got {other:?}"),
        };
        let tune_ok =
            amqp_connection::TuneOk { channel_max: tune.channel_max, frame_max: tune.frame_max, heartbeat: 0 };
        r.send(&AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::TuneOk(tune_ok))));
        let open = amqp_connection::Open { virtual_host: vhost.into() };
        r.send(&AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::Open(open))));
        let opened = match r.next() {
            Some(AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::OpenOk(_)))) => Opened::Ok,
            Some(AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::Close(c)))) => {
                Opened::Closed(c.reply_code, c.reply_text.as_str().to_owned())
            }
            other => panic!("expected connection.open-ok or close, got {other:?}"),
        };
        (r, opened)
    }
}

/// The URI of `vhost` (`/` escaped as `%2f`).
fn uri(door: &Door, user: &str, pass: &str, vhost: &str) -> String {
    format!("amqp://{user}:{pass}@127.0.0.1:{}/{}", door.port, vhost.replace('/', "%2f"))
}

async fn connect(door: &Door, user: &str, pass: &str, vhost: &str) -> lapin::Result<Connection> {
    let uri = uri(door, user, pass, vhost);
    let attempt = Connection::connect(&uri, ConnectionProperties::default());
    tokio::time::timeout(DELIVERY_WAIT, attempt).await.expect("lapin's connect ends")
}

const USERS: &str = "amqpUsers=alice:secret:/,orders;bob:pw2:orders";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_open_only_their_vhosts() {
    let door = Door::start(USERS);
    let port = door.port;
    // (user, password, vhost, opened)
    let rows = [
        ("guest", "guest", "/", true),
        ("guest", "guest", "orders", false),
        ("alice", "secret", "/", true),
        ("alice", "secret", "orders", true),
        ("bob", "pw2", "orders", true),
        ("bob", "pw2", "/", false),
        ("alice", "secret", "nowhere", false),
    ];
    for (user, pass, vhost, want) in rows {
        let case = format!("{user} on {vhost}");
        // The real client: it connects and works, or its connect fails.
        match connect(&door, user, pass, vhost).await {
            Ok(conn) => {
                assert!(want, "{case}: lapin connected");
                let ch = conn.create_channel().await.unwrap();
                queue(&ch, "probe", declare_opts()).await;
                conn.close(200, "bye".into()).await.unwrap();
            }
            Err(e) => {
                assert!(!want, "{case}: {e}");
                assert!(code(&e).is_none_or(|c| c == 530), "{case}: {e}");
            }
        }
        // The exact answer, on a raw socket.
        let expect = if want {
            Opened::Ok
        } else {
            Opened::Closed(530, format!("NOT_ALLOWED - access to vhost '{vhost}' refused for user '{user}'"))
        };
        let opened = tokio::task::spawn_blocking(move || Raw::open(port, user, pass, vhost, false).1).await.unwrap();
        assert_eq!(opened, expect, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vhosts_keep_same_named_queues_apart() {
    let mut door = Door::start(USERS);
    let root = connect(&door, "alice", "secret", "/").await.unwrap();
    let orders = connect(&door, "alice", "secret", "orders").await.unwrap();
    let (rch, och) = (root.create_channel().await.unwrap(), orders.create_channel().await.unwrap());
    for ch in [&rch, &och] {
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        queue(ch, "shared", declare_opts()).await;
    }
    // Same-named exchanges of different types: each vhost has its own.
    rch.exchange_declare("x".into(), ExchangeKind::Direct, ExchangeDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    och.exchange_declare("x".into(), ExchangeKind::Fanout, ExchangeDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    publish(&rch, "", "shared", b"in-root", BasicProperties::default()).await;
    publish(&och, "", "shared", b"in-orders-1", BasicProperties::default()).await;
    publish(&och, "", "shared", b"in-orders-2", BasicProperties::default()).await;
    assert_eq!(drain(&rch, "shared").await, ["in-root"]);
    assert_eq!(drain(&och, "shared").await, ["in-orders-1", "in-orders-2"]);
    // A queue of one vhost is not found from the other, and the text names the vhost.
    queue(&rch, "only-root", declare_opts()).await;
    let passive = QueueDeclareOptions { passive: true, ..declare_opts() };
    let err = och.queue_declare("only-root".into(), passive, FieldTable::default()).await.unwrap_err();
    assert_eq!(code(&err), Some(404), "{err}");
    assert!(err.to_string().contains("no queue 'only-root' in vhost 'orders'"), "{err}");
    // A durable queue of vhost `orders` and its message survive a restart, still in `orders` only
    // (a fresh channel: the 404 closed the other).
    let och = orders.create_channel().await.unwrap();
    och.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    queue(&och, "kept", QueueDeclareOptions { durable: true, ..declare_opts() }).await;
    publish(&och, "", "kept", b"durable-in-orders", BasicProperties::default().with_delivery_mode(2)).await;
    for c in [root, orders] {
        c.close(200, "bye".into()).await.unwrap();
    }
    door.restart();
    let orders = connect(&door, "alice", "secret", "orders").await.unwrap();
    let root = connect(&door, "alice", "secret", "/").await.unwrap();
    let och = orders.create_channel().await.unwrap();
    assert_eq!(drain(&och, "kept").await, ["durable-in-orders"]);
    let rch = root.create_channel().await.unwrap();
    let err = rch.queue_declare("kept".into(), passive, FieldTable::default()).await.unwrap_err();
    assert_eq!(code(&err), Some(404), "{err}");
}
