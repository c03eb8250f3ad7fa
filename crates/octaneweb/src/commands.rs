//! One function per subcommand.

use std::process::ExitCode;

use anyhow::Context as _;
use octaneweb_gateway::context::WsLimits;
use octaneweb_gateway::upstream::{ClientIdentity, Upstream, UpstreamConfig, UpstreamTls};
use octaneweb_gateway::{CallEnd, CallSettings, OutputFormat, RequestInput};
use octaneweb_gateway::{
    GatewayConfig, GatewayState, ReflectionAnswers, ServeOptions, ShapeChoice,
};
use octaneweb_octane::{FrameHub, FrameHubConfig};
use octaneweb_render_server::{CallbackGeneration, ImageFormat, RenderServer, RenderServerConfig};
use octaneweb_schema::{Defaults, FieldNames, JsonShape, Schema, SchemaBuilder};
use tokio::net::TcpListener;

use crate::access::Access;
use crate::cli::{
    BuiltinSchema, CallArgs, CallFormat, DemoArgs, DescribeArgs, GatewayArgs, RenderServerArgs,
    RendererArgs, SchemaExportArgs, SchemaFormat, ServeArgs, UpstreamArgs,
};
use crate::otlp::OtlpSpans;
use crate::shutdown::Shutdown;
use crate::{schema_sources, web};

/// `octaneweb serve`: the gateway in front of a running upstream.
pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Refusals (no token off loopback, unreadable TLS files, bad patterns) come first.
    let access = Access::from_args(&args.gateway.access, args.gateway.listen)?;
    let upstream = upstream(&args.upstream)?;
    let schema = schema_sources::load(&args.schema, &upstream, &[]).await?;
    let listener = bind(args.gateway.listen, "gateway").await?;
    let url = access.browser_url(listener.local_addr()?);
    println!(
        "octaneweb serve: gateway in front of {}; open {url}",
        upstream.target()
    );
    // A schema fetched by reflection is the upstream's to describe.
    let reflection = if args.schema.reflect {
        ReflectionAnswers::Upstream
    } else {
        ReflectionAnswers::Gateway
    };
    run_gateway(
        listener,
        schema,
        upstream,
        &args.gateway,
        access,
        reflection,
        Shutdown::on_signals(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// `octaneweb demo`: the reference render server in-process, and the gateway in front of it.
pub async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let access = Access::from_args(&args.access, args.listen)?;
    let shutdown = Shutdown::on_signals();
    let render_listener = bind(args.render_listen, "render server").await?;
    let render_addr = render_listener.local_addr()?;
    let mut config = renderer_config(&args.renderer);
    if config.project_root.is_none() {
        config.project_root = default_project_root();
    }
    if let Some(root) = &config.project_root {
        println!(
            "octaneweb demo: projects load from and save to {}",
            root.display()
        );
    }
    let generation = config.callback_generation;
    let server = RenderServer::start(config).context("starting the reference render server")?;
    let render_task = tokio::spawn(server.serve(render_listener, shutdown.clone().wait()));

    let upstream = Upstream::new(UpstreamConfig {
        target: render_addr.to_string(),
        ..UpstreamConfig::default()
    })?;
    let mut builder = SchemaBuilder::new();
    schema_sources::add_builtin(
        &mut builder,
        match generation {
            CallbackGeneration::Gen1 => BuiltinSchema::Gen1,
            CallbackGeneration::Gen2 => BuiltinSchema::Gen2,
        },
    )?;
    let schema = schema_sources::build(builder)?;
    let gateway = GatewayArgs {
        listen: args.listen,
        access: args.access.clone(),
        telemetry: args.telemetry.clone(),
        max_body: 8 * 1024 * 1024,
        ws_max_calls: WsLimits::default().max_calls.try_into().unwrap_or(u32::MAX),
        ws_idle_timeout: WsLimits::default().idle_timeout,
        ws_max_frame: WsLimits::default()
            .max_frame_bytes
            .try_into()
            .unwrap_or(u32::MAX),
        ws_call_queue: WsLimits::default()
            .inbound_queue_messages
            .try_into()
            .unwrap_or(u32::MAX),
        ws_socket_queue: WsLimits::default()
            .outbound_queue_frames
            .try_into()
            .unwrap_or(u32::MAX),
        render_autostart: true,
        keep_callback: false,
        json_names: None,
        json_defaults: None,
    };
    let listener = bind(args.listen, "gateway").await?;
    let url = access.browser_url(listener.local_addr()?);
    println!("octaneweb demo: render server on {render_addr}");
    println!("octaneweb demo: open {url} in a browser (Ctrl-C stops)");
    if !args.no_open {
        open_browser(&url);
    }
    run_gateway(
        listener,
        schema,
        upstream,
        &gateway,
        access,
        ReflectionAnswers::Gateway,
        shutdown,
    )
    .await?;
    match render_task.await {
        Ok(result) => result.context("reference render server")?,
        Err(error) => anyhow::bail!("reference render server task failed: {error}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `octaneweb render-server`: serve, or render one still with --snapshot.
pub async fn render_server(args: RenderServerArgs) -> anyhow::Result<ExitCode> {
    let config = renderer_config(&args.renderer);
    if let Some(path) = &args.snapshot {
        let spp = args.spp;
        let out = path.clone();
        tokio::task::spawn_blocking(move || octaneweb_render_server::snapshot(&config, spp, &out))
            .await
            .context("snapshot task")?
            .with_context(|| format!("rendering {}", path.display()))?;
        println!("wrote {} ({spp} samples per pixel)", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let listener = bind(args.listen, "render server").await?;
    tracing::info!(addr = %listener.local_addr()?, "reference render server listening");
    let server = RenderServer::start(config).context("starting the reference render server")?;
    server
        .serve(listener, Shutdown::on_signals().wait())
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// `octaneweb describe [NAME]`.
pub async fn describe(args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let upstream = upstream(&args.upstream)?;
    let schema = schema_sources::load(&args.schema, &upstream, &[]).await?;
    let text = schema.describe(args.name.as_deref())?;
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// `octaneweb schema --out FILE [--format binpb|json]`.
pub async fn schema(args: SchemaExportArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let upstream = upstream(&args.upstream)?;
    let schema = schema_sources::load(&args.schema, &upstream, &[]).await?;
    let to_stdout = args.out.as_os_str() == "-";
    let format = args.format.unwrap_or_else(|| {
        if !to_stdout && args.out.extension().is_some_and(|e| e == "json") {
            SchemaFormat::Json
        } else {
            SchemaFormat::Binpb
        }
    });
    let bytes = match format {
        SchemaFormat::Binpb => schema.file_descriptor_set(),
        SchemaFormat::Json => {
            let json = schema
                .file_descriptor_set_json()
                .context("writing the schema as JSON")?;
            let mut text = serde_json::to_vec_pretty(&json)?;
            text.push(b'\n');
            text
        }
    };
    if to_stdout {
        let mut stdout = std::io::stdout().lock();
        match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
            // A reader that stopped early (`| head`) wanted no more.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.context("writing the schema to standard output")?,
        }
    } else {
        std::fs::write(&args.out, &bytes)
            .with_context(|| format!("writing {}", args.out.display()))?;
        eprintln!(
            "octaneweb schema: wrote {} files ({} bytes) to {}",
            schema.pool().files().len(),
            bytes.len(),
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `octaneweb call METHOD [JSON]`.
pub async fn call(args: CallArgs) -> anyhow::Result<ExitCode> {
    use std::io::{IsTerminal as _, Write as _};
    let upstream = upstream(&args.upstream)?;
    let schema = schema_sources::load(&args.schema, &upstream, &args.header).await?;
    let mut stderr = std::io::stderr();
    let spec = args.data.as_deref().or(args.json.as_deref()).unwrap_or("");
    let input = match RequestInput::from_spec(spec, Box::new(std::io::stdin())) {
        Ok(input) => input,
        Err(error) => {
            let _ = writeln!(stderr, "octaneweb call: {error}");
            return Ok(ExitCode::from(error.exit_code()));
        }
    };
    let mut stdout = std::io::stdout();
    let format = match args.format {
        CallFormat::Pretty => OutputFormat::Pretty,
        CallFormat::Compact => OutputFormat::Compact,
        CallFormat::Auto if stdout.is_terminal() => OutputFormat::Pretty,
        CallFormat::Auto => OutputFormat::Compact,
    };
    let settings = CallSettings {
        timeout: None,
        headers: args.header,
        // As grpcurl prints: proto names, no defaults unless asked for.
        shape: JsonShape {
            names: args.json_names.unwrap_or(FieldNames::Proto),
            defaults: if args.emit_defaults {
                Defaults::Emit
            } else {
                args.json_defaults.unwrap_or(Defaults::Omit)
            },
        },
        format,
        verbose: args.verbose,
        // With --reflect the schema is the upstream's already.
        suggest_reflection: !args.schema.reflect,
    };
    let called = octaneweb_gateway::call_with(
        &schema,
        &upstream,
        &args.method,
        input,
        &settings,
        &mut stdout,
        &mut stderr,
    )
    .await;
    match called {
        // A reader that closed the output early (`| head -1`) had what it wanted.
        Ok(CallEnd::Completed | CallEnd::OutputClosed) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            let _ = writeln!(stderr, "octaneweb call: {error}");
            Ok(ExitCode::from(error.exit_code()))
        }
    }
}

async fn run_gateway(
    listener: TcpListener,
    schema: Schema,
    upstream: Upstream,
    args: &GatewayArgs,
    access: Access,
    reflection: ReflectionAnswers,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let listen = listener.local_addr()?;
    let hub = FrameHub::start(
        upstream.clone(),
        &schema,
        FrameHubConfig {
            autostart: args.render_autostart,
            unset_when_idle: !args.keep_callback,
            ..FrameHubConfig::default()
        },
    );
    let config = GatewayConfig {
        cors_origins: access.cors_origins.clone(),
        allowed_hosts: access.allowed_hosts.clone(),
        listen: Some(listen),
        token: access.token.clone(),
        tls: access.tls.is_some(),
        methods: access.methods.clone(),
        rate_limit: access.rate_limit,
        max_body_bytes: args.max_body,
        websocket: WsLimits {
            max_calls: args.ws_max_calls as usize,
            idle_timeout: args.ws_idle_timeout,
            max_frame_bytes: args.ws_max_frame as usize,
            inbound_queue_messages: args.ws_call_queue as usize,
            outbound_queue_frames: args.ws_socket_queue as usize,
            // Pings are what a quiet but healthy client answers, so they come well within
            // the idle timeout.
            ping_interval: (args.ws_idle_timeout / 3).min(WsLimits::default().ping_interval),
            ..WsLimits::default()
        },
        json_shape: ShapeChoice {
            names: args.json_names,
            defaults: args.json_defaults,
        },
        reflection,
    };
    let state = GatewayState::new(schema, upstream, config);
    state.metrics.add_collector(hub.metrics_collector());
    let spans = match &args.telemetry.otlp_endpoint {
        Some(endpoint) => {
            let spans = OtlpSpans::start(endpoint)?;
            state.metrics.export_spans(spans.clone());
            tracing::info!(endpoint = %endpoint, "exporting a span per call over OTLP");
            Some(spans)
        }
        None => None,
    };
    let extra = web::routes()
        .merge(octaneweb_octane::routes_with_policy(
            hub.clone(),
            &state.config.methods,
        ))
        .merge(octaneweb_octane::octanewebr::routes(
            hub.clone(),
            state.clone(),
        ));
    let options = ServeOptions {
        limits: access.limits.clone(),
        tls: access.tls.clone(),
        stats: state.connection_stats(),
    };
    let app = octaneweb_gateway::router(state, extra);
    let (allow, deny) = access.methods.patterns();
    tracing::info!(
        addr = %listen,
        tls = options.tls.is_some(),
        token = access.token.is_some(),
        allow = ?allow,
        deny = ?deny,
        web_files = web::file_count(),
        "gateway listening"
    );
    let served = octaneweb_gateway::serve_with(listener, app, options, shutdown.wait()).await;
    // Unset the render callback on the way out, so the upstream stops sending.
    hub.shutdown();
    if let Some(spans) = spans {
        // The processor's thread blocks while it sends what is queued.
        let _ = tokio::task::spawn_blocking(move || spans.shutdown()).await;
    }
    served.context("gateway server")?;
    Ok(())
}

fn upstream(args: &UpstreamArgs) -> anyhow::Result<Upstream> {
    let timeout = (!args.timeout.is_zero()).then_some(args.timeout);
    let wants_tls = args.upstream_tls
        || args.upstream_ca.is_some()
        || args.upstream_tls_domain.is_some()
        || args.upstream_cert.is_some();
    let tls = if wants_tls {
        let ca_certificate_pem = match &args.upstream_ca {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("reading --upstream-ca {}", path.display()))?,
            ),
            None => None,
        };
        let identity = match (&args.upstream_cert, &args.upstream_key) {
            (Some(cert), Some(key)) => Some(ClientIdentity {
                certificate_pem: std::fs::read(cert)
                    .with_context(|| format!("reading --upstream-cert {}", cert.display()))?,
                key_pem: std::fs::read(key)
                    .with_context(|| format!("reading --upstream-key {}", key.display()))?,
            }),
            _ => None,
        };
        Some(UpstreamTls {
            domain: args.upstream_tls_domain.clone(),
            ca_certificate_pem,
            identity,
        })
    } else {
        None
    };
    Ok(Upstream::new(UpstreamConfig {
        target: args.target(),
        default_timeout: timeout,
        connect_timeout: args.connect_timeout,
        tls,
        pool: args.pool_limits(),
        ..UpstreamConfig::default()
    })?)
}

fn renderer_config(args: &RendererArgs) -> RenderServerConfig {
    RenderServerConfig {
        width: args.width,
        height: args.height,
        callback_generation: if args.callback_generation == 1 {
            CallbackGeneration::Gen1
        } else {
            CallbackGeneration::Gen2
        },
        max_callback_rate: args.callback_rate,
        image_format: if args.hdr {
            ImageFormat::Hdr
        } else {
            ImageFormat::Ldr
        },
        file_root: args.file_root.clone(),
        project_root: args.project_root.clone(),
        max_samples_per_pixel: args.max_spp,
    }
}

/// Where `demo` keeps projects when no --project-root is given: the user's data directory,
/// made if missing. `None` (no project files, with a warning) when there is no home.
fn default_project_root() -> Option<std::path::PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".local/share"))
        })?;
    let root = data.join("octaneweb").join("projects");
    match std::fs::create_dir_all(&root) {
        Ok(()) => Some(root),
        Err(error) => {
            tracing::warn!(path = %root.display(), %error, "no project directory; project files are off (give --project-root)");
            None
        }
    }
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{what}: cannot listen on {addr}"))
}

/// Best effort: only on an interactive terminal with a desktop session.
fn open_browser(url: &str) {
    use std::io::IsTerminal as _;
    let desktop =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !(std::io::stdout().is_terminal() && desktop) {
        return;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}
