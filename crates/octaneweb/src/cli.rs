//! Command-line interface: every flag, its environment fallback and its help text.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use octaneweb_gateway::upstream::pool;
use octaneweb_gateway::RequestHeader;

/// Drive a live gRPC render server (Octane LiveLink) from a web browser.
///
/// `octaneweb demo` runs everything on this machine: the reference render server and the
/// gateway with its web client. `octaneweb serve` puts the gateway in front of a running
/// Octane (or any gRPC server).
#[derive(Debug, Parser)]
#[command(
    name = "octaneweb",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Log format on stderr. RUST_LOG sets the level (default: info; failed calls are logged
    /// at info, every call with RUST_LOG=info,octaneweb::call=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "OCTANEWEB_LOG_FORMAT")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway in front of a gRPC server (by default Octane on 127.0.0.1:51022).
    Serve(ServeArgs),
    /// Run the reference render server and the gateway together, and print the URL to open.
    Demo(DemoArgs),
    /// Run the reference LiveLink render server (a progressive CPU path tracer).
    RenderServer(RenderServerArgs),
    /// List the services of the loaded schema, or describe a service, method, message or enum.
    Describe(DescribeArgs),
    /// Call one method with a JSON request and print the response as JSON (one line per
    /// message into a pipe). The exit code is the gRPC status code.
    #[command(after_help = CALL_EXAMPLES)]
    Call(CallArgs),
    /// Write the loaded schema as a FileDescriptorSet (every file after its imports, with
    /// comments), for code generators and tools (protoc, buf, grpcurl -protoset).
    Schema(SchemaExportArgs),
}

/// Where the gateway finds its schema. With none of --proto, --descriptor-set and --reflect,
/// the built-in reference protos are used.
#[derive(Debug, Clone, Args)]
pub struct SchemaArgs {
    /// A .proto file or a directory of them (searched recursively; imports resolve within the
    /// given directories). Repeatable; earlier paths take precedence on conflicts.
    #[arg(long = "proto", value_name = "PATH")]
    pub proto: Vec<PathBuf>,

    /// A FileDescriptorSet as written by `protoc -o` or `buf build`. Repeatable.
    #[arg(long = "descriptor-set", value_name = "FILE")]
    pub descriptor_set: Vec<PathBuf>,

    /// Ask the upstream's reflection service for its schema (v1, then v1alpha). The gateway
    /// then forwards reflection calls to the upstream instead of answering them itself.
    #[arg(long)]
    pub reflect: bool,

    /// Which built-in reference schema to load: callback stream generation 2 (current SDKs),
    /// generation 1 (images inline), or none. Default: gen2 when no other source is given,
    /// none otherwise. When combined with other sources it is loaded last (lowest precedence).
    #[arg(long, value_enum, value_name = "SET")]
    pub builtin_schema: Option<BuiltinSchema>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuiltinSchema {
    Gen2,
    Gen1,
    None,
}

/// The upstream gRPC server.
#[derive(Debug, Clone, Args)]
pub struct UpstreamArgs {
    /// Upstream gRPC server as host:port. Defaults to OCTANE_HOST:OCTANE_PORT, each falling
    /// back to 127.0.0.1 and 51022 (as the original proxy read them).
    #[arg(long, value_name = "HOST:PORT", env = "OCTANEWEB_UPSTREAM")]
    pub upstream: Option<String>,

    /// Deadline of a call when the client gives none, e.g. 30s, 500ms, 2m. 0 means none.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Connect to the upstream over TLS (system roots, plus --upstream-ca if given).
    #[arg(long)]
    pub upstream_tls: bool,

    /// PEM file with a CA certificate to trust for the upstream, in addition to the system
    /// roots. Implies --upstream-tls.
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,

    /// Name to verify the upstream's certificate against (default: the host of --upstream).
    /// Implies --upstream-tls.
    #[arg(long, value_name = "NAME")]
    pub upstream_tls_domain: Option<String>,

    /// PEM client certificate chain to present to the upstream, for servers that require
    /// mutual TLS (needs --upstream-key). Implies --upstream-tls.
    #[arg(long, value_name = "FILE", requires = "upstream_key")]
    pub upstream_cert: Option<PathBuf>,

    /// The PEM private key of --upstream-cert.
    #[arg(long, value_name = "FILE", requires = "upstream_cert")]
    pub upstream_key: Option<PathBuf>,

    /// How long opening a connection to the upstream may take (TCP; for `call` the TLS
    /// handshake too) before it fails with UNAVAILABLE, e.g. 1.5s or 10s. A call's deadline
    /// (--timeout) is separate.
    #[arg(long, value_name = "DURATION", default_value = "1.5s", value_parser = parse_connect_timeout)]
    pub connect_timeout: Duration,

    /// Streams one upstream connection carries before the gateway opens another. 100 suits
    /// every HTTP/2 server (RFC 9113 asks them to allow at least that many).
    #[arg(long, value_name = "N", default_value_t = pool::DEFAULT_STREAMS_PER_CONNECTION,
          value_parser = at_least_one)]
    pub upstream_streams_per_connection: usize,

    /// Upstream connections the gateway opens at most; past them, calls wait in a queue
    /// (--upstream-queue) and their deadlines keep running.
    #[arg(long, value_name = "N", default_value_t = pool::DEFAULT_MAX_CONNECTIONS,
          value_parser = at_least_one)]
    pub upstream_max_connections: usize,

    /// Calls that may wait for an upstream stream once every connection is full; more fail
    /// at once with RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "N", default_value_t = pool::DEFAULT_MAX_WAITING)]
    pub upstream_queue: usize,

    /// Largest request metadata (headers) of one call sent upstream, in bytes as HTTP/2
    /// counts them; a call over it fails alone with RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "BYTES", default_value_t = pool::DEFAULT_MAX_REQUEST_HEADER_BYTES)]
    pub upstream_max_header_bytes: usize,
}

/// A count of 1 or more.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl UpstreamArgs {
    /// The connection pool's limits.
    pub fn pool_limits(&self) -> pool::PoolLimits {
        pool::PoolLimits {
            streams_per_connection: self.upstream_streams_per_connection,
            max_connections: self.upstream_max_connections,
            max_waiting: self.upstream_queue,
            max_request_header_bytes: self.upstream_max_header_bytes,
        }
    }
}

impl UpstreamArgs {
    /// The upstream address, from --upstream or OCTANE_HOST / OCTANE_PORT.
    pub fn target(&self) -> String {
        if let Some(target) = &self.upstream {
            return target.clone();
        }
        let host = std::env::var("OCTANE_HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
        let port = std::env::var("OCTANE_PORT").unwrap_or_else(|_| "51022".to_owned());
        format!("{host}:{port}")
    }
}

/// The gateway's HTTP side.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Address the gateway listens on. Use 0.0.0.0:PORT to accept other machines.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:51023",
        env = "OCTANEWEB_LISTEN"
    )]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub access: AccessArgs,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    /// Largest request body accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body: usize,

    /// Most calls running at once on one /ws WebSocket; further opens get RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub ws_max_calls: u32,

    /// A /ws WebSocket from which nothing arrived for this long is closed, e.g. 60s, 5m.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_idle_timeout)]
    pub ws_idle_timeout: std::time::Duration,

    /// Largest frame a client may send on /ws, in bytes; a larger one closes the socket (1009).
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u32).range(1024..=256 * 1024 * 1024))]
    pub ws_max_frame: u32,

    /// Request messages queued per /ws call before the upstream takes them; past it the call
    /// ends RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub ws_call_queue: u32,

    /// Frames queued per /ws socket for a slow client before its calls stop reading from
    /// the upstream.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub ws_socket_queue: u32,

    /// Subscribe to render frames at start instead of on the first viewer.
    #[arg(long)]
    pub render_autostart: bool,

    /// Keep the OnNewImage callback registered when the last viewer leaves.
    #[arg(long)]
    pub keep_callback: bool,

    /// Field names in JSON answers on every route: proto (user_data) or camel (userData).
    /// Unset, each route keeps its own default; a request can still choose with the
    /// X-Json-Names header or json_names parameter (docs/json.md).
    #[arg(long, value_name = "proto|camel")]
    pub json_names: Option<octaneweb_schema::FieldNames>,

    /// Whether JSON answers on every route include fields at their default value: emit or
    /// omit. Unset, each route keeps its own default; a request can still choose with the
    /// X-Json-Defaults header or json_defaults parameter (docs/json.md).
    #[arg(long, value_name = "emit|omit")]
    pub json_defaults: Option<octaneweb_schema::Defaults>,
}

/// Where the gateway reports what it does besides its log and /metrics. See docs/operations.md.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Export one span per call to this OpenTelemetry collector over OTLP/gRPC, e.g.
    /// http://127.0.0.1:4317. New traces are then sampled; calls that bring a traceparent
    /// keep its sampled flag. Default: no export.
    #[arg(long, value_name = "URL", env = "OCTANEWEB_OTLP_ENDPOINT", value_parser = parse_otlp_endpoint)]
    pub otlp_endpoint: Option<String>,
}

/// An OTLP/gRPC collector's address: an `http://` or `https://` URL with a host.
fn parse_otlp_endpoint(text: &str) -> Result<String, String> {
    let expected =
        "an http:// or https:// URL of an OTLP/gRPC collector, e.g. http://127.0.0.1:4317";
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("{e}; expected {expected}"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(text.to_owned()),
        _ => Err(format!("expected {expected}")),
    }
}

/// Who may use the gateway, and how hard they may push it. See docs/security.md.
#[derive(Debug, Clone, Args)]
pub struct AccessArgs {
    /// A page origin allowed to use the gateway from a browser, e.g. https://app.example.com
    /// or a development server's http://localhost:5173. Repeatable. The gateway's own origin
    /// is always allowed; pages on other origins, other localhost ports included, are not.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origin: Vec<String>,

    /// A host name the gateway answers for (e.g. render-box.lan), besides loopback names and
    /// addresses and the listen address. Repeatable. Requests for other names are refused,
    /// which stops DNS-rebinding pages.
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_host: Vec<String>,

    /// Require this token from every client: `Authorization: Bearer TOKEN`, or a browser
    /// opened once with ?token=TOKEN. At least 16 letters, digits or - . _ ~. Prefer
    /// OCTANEWEB_TOKEN or --token-file (command lines are visible to other users).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "OCTANEWEB_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,

    /// Read the token from this file (surrounding white space is ignored).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Listen off loopback without a token: anyone who can reach the port can drive the
    /// renderer. Only for networks where that is intended.
    #[arg(long)]
    pub insecure_no_auth: bool,

    /// Serve TLS with this PEM certificate chain (needs --tls-key). HTTP/1.1 and HTTP/2 are
    /// offered by ALPN on the same port.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates signed by a CA in this PEM file (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Only methods matching this glob may be called (over full and short names, e.g.
    /// '*/Get*' or 'LiveLink/*'). Repeatable. Default: every method.
    #[arg(long = "allow", value_name = "PATTERN")]
    pub allow: Vec<String>,

    /// Methods matching this glob are refused (PERMISSION_DENIED), e.g.
    /// 'octaneapi.ApiProjectManagerService/*'. Repeatable; wins over --allow.
    #[arg(long = "deny", value_name = "PATTERN")]
    pub deny: Vec<String>,

    /// Most client connections open at once; more are closed as they arrive.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Most connections open at once from one client address (raise it behind a reverse
    /// proxy, whose connections all come from one address).
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_address: u32,

    /// A connection that sends nothing (or completes no TLS handshake) for this long is closed.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_idle_timeout)]
    pub first_byte_timeout: Duration,

    /// A connection with no request or stream in flight for this long is closed.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_idle_timeout)]
    pub idle_timeout: Duration,

    /// A client that takes no byte of a response for this long (it stopped reading) is
    /// disconnected; counted in /metrics as octaneweb_connections_closed_total{reason="send_stall"}.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_idle_timeout)]
    pub send_stall_timeout: Duration,

    /// Most calls per second from one client address (a burst of as many is allowed);
    /// more get RESOURCE_EXHAUSTED (HTTP 429). Default: unlimited.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    #[command(flatten)]
    pub schema: SchemaArgs,
}

/// Settings of the reference render server.
#[derive(Debug, Clone, Args)]
pub struct RendererArgs {
    /// Image width in pixels.
    #[arg(long, default_value_t = 1024)]
    pub width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 512)]
    pub height: u32,
    /// Callback stream generation: 2 sends a notification per new image (the client grabs it),
    /// 1 sends images inline (as the original Python proxy expects).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub callback_generation: u8,
    /// Most newImage callbacks per second.
    #[arg(long, default_value_t = 30.0)]
    pub callback_rate: f64,
    /// Send linear float RGBA (IMAGE_TYPE_HDR_RGBA) instead of 8-bit sRGB RGBA.
    #[arg(long)]
    pub hdr: bool,
    /// Directory GetFile may serve files from (and saveImage1 write to). Without it GetFile
    /// refuses every path.
    #[arg(long, value_name = "DIR")]
    pub file_root: Option<PathBuf>,
    /// Directory projects are loaded from and saved to (ApiProjectManager). `demo` defaults
    /// to $XDG_DATA_HOME/octaneweb/projects (~/.local/share/octaneweb/projects);
    /// `render-server` has no project files without it.
    #[arg(long, value_name = "DIR")]
    pub project_root: Option<PathBuf>,
    /// Stop refining at this many samples per pixel.
    #[arg(long, value_name = "N")]
    pub max_spp: Option<u32>,
}

#[derive(Debug, Args)]
pub struct RenderServerArgs {
    /// Address the render server listens on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:51022")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub renderer: RendererArgs,
    /// Render one still to this PNG file and exit, instead of serving.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// Samples per pixel of the --snapshot still.
    #[arg(long, default_value_t = 256, requires = "snapshot")]
    pub spp: u32,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address the gateway (and its web client) listens on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:51023")]
    pub listen: SocketAddr,
    /// Address of the in-process render server. Port 0 picks a free one, so a running Octane
    /// on 51022 is left alone.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub render_listen: SocketAddr,
    #[command(flatten)]
    pub renderer: RendererArgs,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Do not try to open the page in a browser.
    #[arg(long)]
    pub no_open: bool,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// A service, method, message or enum name. Without it, every service is listed.
    pub name: Option<String>,
    #[command(flatten)]
    pub schema: SchemaArgs,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The method: Service/method or Service.method; the service name may drop its package
    /// and its "Service" suffix (ApiItem/name, LiveLink.GetCamera).
    pub method: String,
    /// The request as JSON (proto3 JSON mapping), as with --data. Empty means the empty
    /// message.
    #[arg(conflicts_with = "data")]
    pub json: Option<String>,
    /// The request: JSON text, @FILE to read a file, or @- to read standard input. Client-
    /// and bidirectional-streaming methods take several messages: a JSON array, or objects one
    /// after the other; from standard input each is sent as soon as it is complete.
    #[arg(short = 'd', long, value_name = "DATA")]
    pub data: Option<String>,
    /// Request metadata as 'name: value', also sent with the reflection requests of
    /// --reflect. Repeatable. A name ending in -bin takes base64. Reserved names (grpc-*,
    /// content-type, te, hop-by-hop and pseudo-headers) are refused.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub header: Vec<RequestHeader>,
    /// Describe the call on standard error: method and kind, metadata sent (credentials
    /// redacted), response headers, each message, trailers, status and its details, timing.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Print fields that hold their default value (0, "", false, empty lists), which are left
    /// out otherwise; the same as --json-defaults emit.
    #[arg(long, conflicts_with = "json_defaults")]
    pub emit_defaults: bool,
    /// Field names in the printed JSON: proto (user_data, the default) or camel (userData).
    #[arg(long, value_name = "proto|camel")]
    pub json_names: Option<octaneweb_schema::FieldNames>,
    /// Whether the printed JSON has fields at their default value: omit (the default) or
    /// emit. See docs/json.md.
    #[arg(long, value_name = "emit|omit")]
    pub json_defaults: Option<octaneweb_schema::Defaults>,
    /// How to print messages: compact (one line per message, NDJSON), pretty (indented), or
    /// auto (pretty on a terminal, compact into a pipe or file).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = CallFormat::Auto)]
    pub format: CallFormat,
    #[command(flatten)]
    pub schema: SchemaArgs,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
}

/// `octaneweb call --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CallFormat {
    Auto,
    Pretty,
    Compact,
}

/// Examples at the end of `octaneweb call --help`.
const CALL_EXAMPLES: &str = "\
Examples:
  octaneweb call LiveLink/GetCamera
  octaneweb call ApiItem/name -d '{\"objectPtr\":{\"handle\":\"1\",\"type\":\"ApiItem\"}}'
  octaneweb call LiveLink/StreamCamera -d @moves.json        (a client stream from a file)
  echo '{\"fov\": 40}' | octaneweb call LiveLink/SetCamera -d @-
  octaneweb call -v -H \"authorization: Bearer $TOKEN\" LiveLink/GetCamera
  octaneweb call --upstream render:51022 --reflect grpc.health.v1.Health/Check
  octaneweb call StreamCallback/callbackChannel --timeout 0 | head -1

Exit status: 0 on success (also when the reader of the output closes it early, as head
does; the call is then cancelled); otherwise the gRPC status code of the failure, e.g. 5
NOT_FOUND, 14 UNAVAILABLE, 4 DEADLINE_EXCEEDED. Bad flags exit with 2, a schema that cannot
be loaded with 1.";

/// A connect timeout: a duration of at least a millisecond.
fn parse_connect_timeout(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration < Duration::from_millis(1) {
        return Err(format!("`{text}` is no time to connect in (at least 1ms)"));
    }
    Ok(duration)
}

#[derive(Debug, Args)]
pub struct SchemaExportArgs {
    /// Where to write the schema; `-` writes to standard output.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// binpb: the binary FileDescriptorSet (protoc -o); json: the same in the proto3 JSON
    /// mapping. Default: json when --out ends in .json, else binpb.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<SchemaFormat>,
    #[command(flatten)]
    pub schema: SchemaArgs,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaFormat {
    Binpb,
    Json,
}

/// Parses `30s`, `500ms`, `2m`, `1h` or a plain number of seconds.
/// A duration of at least one second (an idle timeout shorter than that closes healthy
/// sockets between two messages).
pub fn parse_idle_timeout(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration < Duration::from_secs(1) {
        return Err(format!("`{text}` is shorter than the 1 s minimum"));
    }
    Ok(duration)
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 30s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn json_shape_flags_parse_and_name_their_choices() {
        use octaneweb_schema::{Defaults, FieldNames};
        let cli = Cli::try_parse_from(["octaneweb", "serve", "--json-names", "camel"])
            .expect("valid flags");
        let Command::Serve(serve) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(serve.gateway.json_names, Some(FieldNames::Camel));
        assert_eq!(serve.gateway.json_defaults, None);
        let cli = Cli::try_parse_from(["octaneweb", "serve", "--json-defaults", "omit"])
            .expect("valid flags");
        let Command::Serve(serve) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(serve.gateway.json_defaults, Some(Defaults::Omit));
        let error = Cli::try_parse_from(["octaneweb", "serve", "--json-names", "snake"])
            .expect_err("not a choice");
        assert!(
            error.to_string().contains("must be proto or camel"),
            "{error}"
        );
    }

    #[test]
    fn websocket_limits_parse_and_refuse_nonsense() {
        assert_eq!(parse_idle_timeout("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_idle_timeout("200ms").is_err());
        let cli = Cli::try_parse_from([
            "octaneweb",
            "serve",
            "--ws-max-calls",
            "7",
            "--ws-idle-timeout",
            "90s",
            "--ws-max-frame",
            "65536",
            "--ws-call-queue",
            "8",
            "--ws-socket-queue",
            "4",
        ])
        .expect("valid flags");
        let Command::Serve(serve) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(serve.gateway.ws_max_calls, 7);
        assert_eq!(serve.gateway.ws_idle_timeout, Duration::from_secs(90));
        assert_eq!(
            (
                serve.gateway.ws_max_frame,
                serve.gateway.ws_call_queue,
                serve.gateway.ws_socket_queue
            ),
            (65536, 8, 4)
        );
        assert!(Cli::try_parse_from(["octaneweb", "serve", "--ws-socket-queue", "0"]).is_err());
        assert!(Cli::try_parse_from(["octaneweb", "serve", "--ws-max-frame", "10"]).is_err());
        assert!(Cli::try_parse_from(["octaneweb", "serve", "--ws-max-calls", "0"]).is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
