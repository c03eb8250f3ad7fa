//! The access flags turned into the gateway's settings, with the checks made before the
//! gateway listens: a token is required off loopback, and every file and pattern must load.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use anyhow::Context as _;
use octaneweb_gateway::server::tls::{self, TlsFiles};
use octaneweb_gateway::{AccessToken, ConnectionLimits, MethodPolicy};
use tokio_rustls::TlsAcceptor;

use crate::cli::AccessArgs;

/// Everything the access flags decide.
pub struct Access {
    pub token: Option<AccessToken>,
    pub tls: Option<TlsAcceptor>,
    pub methods: MethodPolicy,
    pub limits: ConnectionLimits,
    pub rate_limit: Option<NonZeroU32>,
    pub cors_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
}

impl Access {
    /// Reads and checks the flags for a gateway that will listen on `listen`.
    pub fn from_args(args: &AccessArgs, listen: SocketAddr) -> anyhow::Result<Access> {
        let token = match (&args.token, &args.token_file) {
            (Some(text), _) => Some(AccessToken::new(text).context("--token / OCTANEWEB_TOKEN")?),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading --token-file {}", path.display()))?;
                Some(
                    AccessToken::new(&text)
                        .with_context(|| format!("the token in {}", path.display()))?,
                )
            }
            (None, None) => None,
        };
        if !listen.ip().is_loopback() && token.is_none() && !args.insecure_no_auth {
            anyhow::bail!(
                "refusing to listen on {listen} without a token: anyone who can reach it could \
                 drive the renderer and read its files. Give one with --token-file FILE, \
                 OCTANEWEB_TOKEN or --token (e.g. `openssl rand -hex 32`), or pass \
                 --insecure-no-auth if every machine on that network may use it"
            );
        }
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(&TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            })?),
            _ => None,
        };
        let methods = MethodPolicy::new(&args.allow, &args.deny)?;
        Ok(Access {
            token,
            tls,
            methods,
            limits: ConnectionLimits {
                max_connections: args.max_connections as usize,
                max_per_address: args.max_connections_per_address as usize,
                first_byte_timeout: args.first_byte_timeout,
                idle_timeout: args.idle_timeout,
                send_stall_timeout: args.send_stall_timeout,
                ..ConnectionLimits::default()
            },
            rate_limit: args.rate_limit.and_then(NonZeroU32::new),
            cors_origins: args.cors_origin.clone(),
            allowed_hosts: args.allowed_host.clone(),
        })
    }

    /// The address to open in a browser: with the token when there is one (the page then
    /// keeps it in a cookie and drops it from the address bar). Printed, never logged.
    pub fn browser_url(&self, bound: SocketAddr) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let named = self
            .allowed_hosts
            .iter()
            .find(|name| name.as_str() != "*")
            .filter(|_| !bound.ip().is_loopback());
        let host = match (named, bound.ip()) {
            // A name the user gave is what other machines reach it by.
            (Some(name), _) => name.split(':').next().unwrap_or(name).to_owned(),
            (None, ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            (None, std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            (None, ip) => ip.to_string(),
        };
        let host = format!("{host}:{}", bound.port());
        match &self.token {
            Some(token) => format!("{scheme}://{host}/?token={}", token.reveal()),
            None => format!("{scheme}://{host}/"),
        }
    }
}
