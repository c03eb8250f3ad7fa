//! `telemetry-server`: the example training-telemetry gRPC service, with reflection, for
//! driving from a browser through `octaneweb serve --reflect`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use octaneweb_example_telemetry::{TelemetryConfig, TelemetryServer};

/// A simulated training job behind gRPC (telemetry.v1.TrainingService) with server
/// reflection; stop it with Ctrl-C.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50070")]
    listen: SocketAddr,
    /// Training steps per second.
    #[arg(long, default_value_t = 10.0)]
    steps_per_second: f64,
    /// Steps until the job finishes.
    #[arg(long, default_value_t = 5000)]
    total_steps: u64,
    /// Learning rate at the start.
    #[arg(long, default_value_t = 0.01)]
    learning_rate: f64,
    /// Seed of the simulated noise.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let server = match TelemetryServer::new(TelemetryConfig {
        steps_per_second: args.steps_per_second,
        total_steps: args.total_steps,
        learning_rate: args.learning_rate,
        seed: args.seed,
    }) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("telemetry-server: {error}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "telemetry-server: cannot listen on {}: {error}",
                args.listen
            );
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(address) => println!("telemetry-server: listening on {address}"),
        Err(error) => eprintln!("telemetry-server: listening (address unknown: {error})"),
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = shutdown => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => shutdown.await,
        }
    };
    match server.serve(listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("telemetry-server: {error}");
            ExitCode::FAILURE
        }
    }
}
