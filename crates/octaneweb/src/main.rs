//! The `octaneweb` binary: wires the schema, upstream, gateway, frame hub, web client and
//! reference render server together behind one command line.

mod access;
mod cli;
mod commands;
mod otlp;
mod schema_sources;
mod shutdown;
mod web;

use clap::Parser;

use cli::{Cli, Command, LogFormat};

// Every call allocates small buffers on many threads at once; glibc's allocator serialises
// those on its arena locks (about a third of the gateway's time under load was spent there),
// mimalloc's per-thread heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("octaneweb: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => commands::serve(args).await,
            Command::Demo(args) => commands::demo(args).await,
            Command::RenderServer(args) => commands::render_server(args).await,
            Command::Describe(args) => commands::describe(args).await,
            Command::Call(args) => commands::call(args).await,
            Command::Schema(args) => commands::schema(args).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("octaneweb: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_on_stderr())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        // Each line one JSON object: the event's text as "message", its fields beside it, so
        // no event may name a field `timestamp`, `level`, `target` or `message`.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Colour codes only for a terminal, and never under `NO_COLOR` (https://no-color.org):
/// escapes in a log file or a collector are noise, and writing them cost a measurable share
/// of each call's log line.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal as _;
    let no_colour = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_colour && std::io::stderr().is_terminal()
}
