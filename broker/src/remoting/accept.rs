//! The accept loop every door shares (native remoting, HTTP, AMQP): at most a number of open
//! connections (one over the limit is closed at once), a short back-off after an accept error
//! (EMFILE and friends) instead of a spin, `TCP_NODELAY` on, one task per connection, and a stop
//! signal that ends accepting while open connections run on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

/// Pause after a failed accept.
pub const ACCEPT_BACKOFF_MS: u64 = 50;

/// Accepts on `listener` until `stop` is notified, running `serve` for each connection in its own
/// task; `door` names the door in log lines. The returned task ends when accepting stops.
pub fn spawn_accept_loop<F, Fut>(
    listener: TcpListener,
    stop: Arc<Notify>,
    connections_max: usize,
    door: &'static str,
    serve: F,
) -> JoinHandle<()>
where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(connections_max));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.notified() => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(door, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(door, %peer, max = connections_max, "connection limit reached; closing the new connection");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let connection = serve(stream, peer);
            tokio::spawn(async move {
                connection.await;
                drop(permit);
            });
        }
    })
}
