//! The gateway's settings.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use crate::policy::MethodPolicy;

use super::json_shape::ShapeChoice;
use super::token::AccessToken;

/// Default limit on request bodies: 8 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Settings of the browser-facing side.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Origins allowed to call the gateway from a browser, exactly as sent in `Origin`
    /// (`https://app.example.com`, `http://localhost:5173`), or `*` for any. The gateway's
    /// own origin is always allowed.
    pub cors_origins: Vec<String>,
    /// Host names served besides loopback names and addresses and the listen address
    /// (`--allowed-host`).
    pub allowed_hosts: Vec<String>,
    /// The address the gateway listens on, whose IP is an allowed `Host`.
    pub listen: Option<SocketAddr>,
    /// The token every request must carry (`--token`); `None` = no authentication.
    pub token: Option<AccessToken>,
    /// Whether the gateway is served over TLS (its cookie is then `Secure`).
    pub tls: bool,
    /// Which methods may be called (`--allow` / `--deny`).
    pub methods: MethodPolicy,
    /// Calls per second per client address (`--rate-limit`); `None` = unlimited.
    pub rate_limit: Option<NonZeroU32>,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Limits of the multiplexed WebSocket `/ws`.
    pub websocket: WsLimits,
    /// How answers are written as JSON on every route (`--json-names`, `--json-defaults`);
    /// a part left open keeps each route's default, and a request may choose for itself.
    pub json_shape: ShapeChoice,
    /// Who answers the gRPC reflection services.
    pub reflection: ReflectionAnswers,
}

/// Who answers `grpc.reflection.v1.ServerReflection` and `grpc.reflection.v1alpha.ServerReflection`
/// calls, whatever protocol they come in by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReflectionAnswers {
    /// The gateway, from the schema it loaded, so clients see exactly what it can call.
    #[default]
    Gateway,
    /// The upstream, like any other call: for a gateway whose schema came from the
    /// upstream's own reflection (`--reflect`).
    Upstream,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            listen: None,
            token: None,
            tls: false,
            methods: MethodPolicy::default(),
            rate_limit: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            websocket: WsLimits::default(),
            json_shape: ShapeChoice::OPEN,
            reflection: ReflectionAnswers::default(),
        }
    }
}

/// Limits of the multiplexed WebSocket (part of [`crate::GatewayConfig`]).
#[derive(Clone, Debug)]
pub struct WsLimits {
    /// Most calls running at once on one socket.
    pub max_calls: usize,
    /// Largest client frame (text or binary) in bytes.
    pub max_frame_bytes: usize,
    /// Most request messages queued for one call before the upstream takes them.
    pub inbound_queue_messages: usize,
    /// Most request bytes queued for one call before the upstream takes them.
    pub inbound_queue_bytes: usize,
    /// Most frames queued for one socket before the client reads them.
    pub outbound_queue_frames: usize,
    /// Interval of the gateway's pings.
    pub ping_interval: Duration,
    /// A socket from which nothing arrived for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for WsLimits {
    fn default() -> Self {
        Self {
            max_calls: 100,
            max_frame_bytes: 16 * 1024 * 1024,
            inbound_queue_messages: 64,
            inbound_queue_bytes: 4 * 1024 * 1024,
            outbound_queue_frames: 32,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
        }
    }
}
