//! [`serve`]: a [`Dashboard`] on a TCP listener, over HTTP/1.1 with hyper
//! on tokio (feature `server`): what `ratelimit dashboard` runs. Each
//! request carries its peer's `SocketAddr`, which [`Access`](crate::Access)
//! checks.

use core::convert::Infallible;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::service::{Dashboard, Source};

/// Serves `dashboard` on `listener` until accepting fails.
///
/// # Errors
/// The listener's error when accepting a connection fails.
pub async fn serve<S: Source>(
    listener: TcpListener,
    dashboard: Dashboard<S>,
) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let dashboard = dashboard.clone();
        tokio::spawn(async move {
            let service = service_fn(move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(peer);
                let response = dashboard.respond(&request);
                async move { Ok::<_, Infallible>(response) }
            });
            // A connection that fails ends alone; the server goes on.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// [`serve`] on a tokio runtime of its own (one thread), for a program
/// that has none: blocks until accepting fails.
///
/// # Errors
/// Building the runtime, registering the listener, or accepting.
pub fn serve_blocking<S: Source>(
    listener: std::net::TcpListener,
    dashboard: Dashboard<S>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async move {
        listener.set_nonblocking(true)?;
        serve(TcpListener::from_std(listener)?, dashboard).await
    })
}
