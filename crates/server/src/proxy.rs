//! Calls the native server does not implement go, unchanged, to the Python
//! control plane's gRPC server on a loopback address.
//!
//! The request and response bodies are passed through as streams of HTTP/2
//! frames (messages, then trailers), with no message buffered whole.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::uri::{Authority, Scheme, Uri};
use http::{HeaderName, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tonic::Status;
use tonic::transport::server::TcpConnectInfo;

use crate::error::ServerError;

/// The metadata key carrying the caller's address to the control plane (it
/// would otherwise see the proxy's), in gRPC's `ipv4:HOST:PORT` form.
pub const PEER_METADATA_KEY: &str = "statesync-peer";

/// An HTTP/2 (prior knowledge) client of the control plane.
#[derive(Clone)]
pub(crate) struct Proxy {
    client: Client<HttpConnector, Body>,
    authority: Authority,
}

impl Proxy {
    pub(crate) fn new(upstream: &str) -> Result<Self, ServerError> {
        let authority = upstream
            .parse::<Authority>()
            .map_err(|_| ServerError::Upstream(upstream.to_owned()))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Ok(Proxy { client, authority })
    }
}

fn peer(request: &Request) -> Option<HeaderValue> {
    let addr = request.extensions().get::<TcpConnectInfo>()?.remote_addr()?;
    let text = match addr {
        std::net::SocketAddr::V4(a) => format!("ipv4:{a}"),
        std::net::SocketAddr::V6(a) => format!("ipv6:{a}"),
    };
    HeaderValue::from_str(&text).ok()
}

/// Forwards one call; a control plane that cannot be reached is UNAVAILABLE.
pub(crate) async fn forward(State(proxy): State<Proxy>, mut request: Request) -> Response {
    let key = HeaderName::from_static(PEER_METADATA_KEY);
    // Only the proxy says who the peer is.
    request.headers_mut().remove(&key);
    if let Some(peer) = peer(&request) {
        request.headers_mut().insert(key, peer);
    }
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(proxy.authority.clone());
    *request.uri_mut() = match Uri::from_parts(parts) {
        Ok(uri) => uri,
        Err(e) => return unavailable(&e.to_string()),
    };
    match proxy.client.request(request).await {
        Ok(response) => response.map(Body::new),
        Err(e) => unavailable(&format!("the control plane did not answer: {e}")),
    }
}

fn unavailable(why: &str) -> Response {
    Status::unavailable(why).into_http::<Body>()
}
