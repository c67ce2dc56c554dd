//! The start of an AMQP connection, before any channel: the protocol header, `connection.start`
//! / `start-ok` with SASL PLAIN or AMQPLAIN (the configured users, `users.rs`; `guest` only from
//! loopback, as RabbitMQ), `tune` / `tune-ok` (frame size, channels, heartbeat) and `open` (a
//! vhost the user may open: otherwise 530 `access to vhost 'v' refused for user 'u'`, also for a
//! vhost that does not exist, as RabbitMQ answers). A refusal is a `connection.close` with its
//! reply code, written here; then the socket closes.

use std::net::SocketAddr;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{AMQPClass, connection};
use amq_protocol::types::{AMQPValue, FieldTable};
use broker::messaging::Messaging;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::error::{self, Fail};
use crate::props::short;
use crate::{Shared, wire};

/// The frame size allowed before `connection.tune` (the specification's minimum).
const FRAME_MIN_BYTES: u32 = 4096;

/// What the client and the server agreed on.
pub(crate) struct Tuned {
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat_s: u16,
    pub blocked_capable: bool,
    /// The vhost the connection opened.
    pub vhost: String,
}

async fn write_all(wr: &mut OwnedWriteHalf, bytes: &[u8]) -> Result<(), ()> {
    wr.write_all(bytes).await.map_err(|_| ())
}

/// Reads one frame during the handshake.
async fn next_frame(rd: &mut OwnedReadHalf, buf: &mut BytesMut, frame_max: u32) -> Result<AMQPFrame, Fail> {
    loop {
        if let Some(f) = wire::read_frame(buf, frame_max)? {
            return Ok(f);
        }
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(Fail::new(error::CONNECTION_FORCED, "socket closed")),
            Ok(_) => {}
        }
    }
}

async fn send_close(wr: &mut OwnedWriteHalf, f: &Fail) {
    let close = connection::Close { reply_code: f.code, reply_text: short(&f.text), class_id: 0, method_id: 0 };
    let _ = write_all(wr, &wire::method(0, AMQPClass::Connection(connection::AMQPMethod::Close(close)))).await;
}

fn capabilities() -> FieldTable {
    let mut caps = FieldTable::default();
    for name in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        caps.insert(name.into(), AMQPValue::Boolean(true));
    }
    caps
}

/// Runs the handshake on a fresh socket; `Err` once the socket is to be closed.
pub(crate) async fn handshake<M: Messaging>(
    shared: &Shared<M>,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    buf: &mut BytesMut,
    peer: SocketAddr,
) -> Result<Tuned, ()> {
    // The protocol header: anything else gets ours and the socket closes.
    while buf.len() < wire::PROTOCOL_HEADER.len() {
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(()),
            Ok(_) => {}
        }
        if !wire::PROTOCOL_HEADER.starts_with(&buf[..buf.len().min(wire::PROTOCOL_HEADER.len())]) {
            break;
        }
    }
    if buf.len() < wire::PROTOCOL_HEADER.len() || &buf[..wire::PROTOCOL_HEADER.len()] != wire::PROTOCOL_HEADER {
        let _ = write_all(wr, wire::PROTOCOL_HEADER).await;
        return Err(());
    }
    let _ = buf.split_to(wire::PROTOCOL_HEADER.len());
    let s = &shared.settings;
    let mut server_properties = FieldTable::default();
    server_properties.insert("product".into(), AMQPValue::LongString("rocketmq-broker-suite".into()));
    server_properties.insert("version".into(), AMQPValue::LongString(env!("CARGO_PKG_VERSION").into()));
    server_properties.insert("platform".into(), AMQPValue::LongString("Rust".into()));
    server_properties.insert("capabilities".into(), AMQPValue::FieldTable(capabilities()));
    let start = connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties,
        mechanisms: "PLAIN AMQPLAIN".into(),
        locales: "en_US".into(),
    };
    write_all(wr, &wire::method(0, AMQPClass::Connection(connection::AMQPMethod::Start(start)))).await?;
    let frame = next_frame(rd, buf, FRAME_MIN_BYTES).await.map_err(|_| ())?;
    let AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::StartOk(ok))) = frame else {
        return Err(());
    };
    let mechanism = ok.mechanism.as_str().to_owned();
    let credentials = match mechanism.as_str() {
        "PLAIN" => plain(ok.response.as_bytes()),
        "AMQPLAIN" => amqplain(ok.response.as_bytes()),
        _ => None,
    };
    let loopback = peer.ip().is_loopback() || peer.ip().to_canonical().is_loopback();
    let user = credentials.as_ref().filter(|(u, p)| shared.users.login(u, p, loopback)).map(|(u, _)| u.clone());
    let Some(user) = user else {
        let label = if matches!(mechanism.as_str(), "PLAIN" | "AMQPLAIN") { mechanism.as_str() } else { "other" };
        shared.metrics.auth_failures.with_label_values(&[label]).inc();
        tracing::info!(%peer, mechanism = %mechanism, "AMQP login refused");
        let f = Fail::access_refused(format!(
            "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
        ));
        send_close(wr, &f).await;
        return Err(());
    };
    let blocked_capable = match ok.client_properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(t)) => matches!(t.inner().get("connection.blocked"), Some(AMQPValue::Boolean(true))),
        _ => false,
    };
    let tune = connection::Tune { channel_max: s.channel_max, frame_max: s.frame_max_bytes, heartbeat: s.heartbeat_s };
    write_all(wr, &wire::method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(tune)))).await?;
    let frame = next_frame(rd, buf, FRAME_MIN_BYTES).await.map_err(|_| ())?;
    let AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::TuneOk(t))) = frame else {
        return Err(());
    };
    let frame_max = if t.frame_max == 0 { s.frame_max_bytes } else { t.frame_max };
    if frame_max > s.frame_max_bytes || frame_max < FRAME_MIN_BYTES {
        let f = Fail::new(
            error::NOT_ALLOWED,
            format!("frame_max={frame_max} is outside {FRAME_MIN_BYTES}..={}", s.frame_max_bytes),
        );
        send_close(wr, &f).await;
        return Err(());
    }
    let channel_max = if t.channel_max == 0 { s.channel_max } else { t.channel_max.min(s.channel_max) };
    let frame = next_frame(rd, buf, frame_max).await.map_err(|_| ())?;
    let AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Open(open))) = frame else {
        return Err(());
    };
    let vhost = open.virtual_host.as_str().to_owned();
    let exists = shared.model.read().unwrap_or_else(|e| e.into_inner()).vhosts.contains_key(&vhost);
    if !exists || !shared.users.may_open(&user, &vhost) {
        tracing::info!(%peer, %user, %vhost, "AMQP vhost refused");
        let f = Fail::new(error::NOT_ALLOWED, format!("access to vhost '{vhost}' refused for user '{user}'"));
        send_close(wr, &f).await;
        return Err(());
    }
    write_all(wr, &wire::method(0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {}))))
        .await?;
    Ok(Tuned { frame_max, channel_max, heartbeat_s: t.heartbeat, blocked_capable, vhost })
}

/// SASL PLAIN: `authzid NUL authcid NUL password`.
fn plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|b| *b == 0);
    let _authz = parts.next()?;
    let user = parts.next()?;
    let pass = parts.next()?;
    Some((String::from_utf8(user.to_vec()).ok()?, String::from_utf8(pass.to_vec()).ok()?))
}

/// AMQPLAIN: a field table without its length prefix, with `LOGIN` and `PASSWORD`.
fn amqplain(response: &[u8]) -> Option<(String, String)> {
    let len = u32::try_from(response.len()).ok()?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(response);
    let (_, table) = amq_protocol::types::parsing::parse_field_table(&framed[..]).ok()?;
    let get = |k: &str| table.inner().get(k).and_then(crate::model::value_text);
    Some((get("LOGIN")?, get("PASSWORD")?))
}
