//! What the load harnesses (`octaneweb-load`, `load-wire`, `load-ws`) share: driving callers
//! for a while, summarising their latencies, taking medians over rounds, printing rows, and
//! a gateway started in-process.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use octaneweb_gateway::upstream::{Upstream, UpstreamConfig};
use octaneweb_gateway::{GatewayConfig, GatewayState};
use tokio::net::TcpListener;

/// One measured round: a rate and latency percentiles of one unit (a call, a message, a
/// batch).
#[derive(Debug, Clone, Copy)]
pub struct Round {
    /// Units per second.
    pub per_second: f64,
    /// Median latency of a unit.
    pub p50: Duration,
    /// 99th-percentile latency of a unit.
    pub p99: Duration,
}

/// One unmeasured warm-up round (connections, caches), then `rounds` measured ones; each
/// figure is the median over the measured rounds.
pub async fn median<F, Fut>(rounds: usize, mut run: F) -> anyhow::Result<Round>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Round>>,
{
    run().await?;
    let mut results = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        results.push(run().await?);
    }
    Ok(combine(&results))
}

/// Each figure of `results` taken separately: the median.
fn combine(results: &[Round]) -> Round {
    let seconds = |pick: fn(&Round) -> Duration| {
        Duration::from_secs_f64(median_of(
            results.iter().map(|r| pick(r).as_secs_f64()).collect(),
        ))
    };
    Round {
        per_second: median_of(results.iter().map(|r| r.per_second).collect()),
        p50: seconds(|r| r.p50),
        p99: seconds(|r| r.p99),
    }
}

fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The rate and percentiles of `latencies` collected over `elapsed`.
pub fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> anyhow::Result<Round> {
    if latencies.is_empty() {
        bail!("nothing completed");
    }
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok(Round {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    })
}

/// Runs `callers` loops of `call(caller index)` for `length`, recording each call's latency.
pub async fn drive<F, Fut>(callers: usize, length: Duration, call: F) -> anyhow::Result<Round>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let deadline = Instant::now() + length;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(callers);
    for caller in 0..callers.max(1) {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let begin = Instant::now();
                call(caller).await?;
                latencies.push(begin.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    summarize(all, started.elapsed())
}

/// A Markdown table row: callers, path, rate, p50, p99.
pub fn print_row(callers: usize, path: &str, round: Round) {
    println!(
        "| {callers} | {path} | {:.0} | {:.0} µs | {:.0} µs |",
        round.per_second,
        round.p50.as_secs_f64() * 1e6,
        round.p99.as_secs_f64() * 1e6
    );
}

/// The gateway in this process, in front of `render_addr`, with the built-in schema plus
/// `extra_schema` descriptor sets, on an ephemeral loopback port.
pub async fn start_in_process_gateway(
    render_addr: SocketAddr,
    extra_schema: &[(&str, &[u8])],
) -> anyhow::Result<SocketAddr> {
    start_in_process_gateway_with(render_addr, extra_schema, GatewayConfig::default()).await
}

/// Like [`start_in_process_gateway`], with `config` (for instance reflection answered by the
/// upstream, so a reflection call makes the same hop as any other).
pub async fn start_in_process_gateway_with(
    render_addr: SocketAddr,
    extra_schema: &[(&str, &[u8])],
    config: GatewayConfig,
) -> anyhow::Result<SocketAddr> {
    let upstream = Upstream::new(UpstreamConfig {
        target: render_addr.to_string(),
        ..UpstreamConfig::default()
    })?;
    let mut builder = octaneweb_schema::SchemaBuilder::new();
    builder.add_descriptor_set("built-in", octaneweb_proto::DESCRIPTOR_SET)?;
    for (origin, set) in extra_schema {
        builder.add_descriptor_set(origin, set)?;
    }
    let schema = builder.build()?;
    let state = GatewayState::new(schema, upstream, config);
    // No extra routes: the harnesses measure the gateway alone.
    let app = octaneweb_gateway::router(state, axum::Router::new());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(octaneweb_gateway::serve(
        listener,
        app,
        std::future::pending(),
    ));
    Ok(addr)
}

/// CPU time (user + system, all threads) that process `pid` has used so far, read from
/// `/proc/PID/stat`; `None` where there is no procfs or the process is gone.
pub fn process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; count from after it.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks as f64,
    ))
}

/// The processes whose CPU time a measurement attributes to each call: the load generator
/// itself, and the servers it calls.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    processes: Vec<(String, u32)>,
}

/// CPU time per unit (call, message) of each metered process, in one measurement.
#[derive(Debug, Clone)]
pub struct CpuPerUnit {
    /// `(process name, CPU µs per unit)`, in the meter's order.
    pub processes: Vec<(String, f64)>,
}

impl CpuPerUnit {
    /// The sum over all metered processes.
    pub fn total(&self) -> f64 {
        self.processes.iter().map(|(_, us)| us).sum()
    }
}

impl Default for CpuMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuMeter {
    /// A meter of this process alone, named `harness`.
    pub fn new() -> CpuMeter {
        CpuMeter {
            processes: vec![("harness".to_owned(), std::process::id())],
        }
    }

    /// Also meter process `pid` under `name`.
    pub fn with(mut self, name: &str, pid: Option<u32>) -> CpuMeter {
        if let Some(pid) = pid {
            self.processes.push((name.to_owned(), pid));
        }
        self
    }

    fn read(&self) -> Vec<Duration> {
        self.processes
            .iter()
            .map(|(_, pid)| process_cpu_time(*pid).unwrap_or_default())
            .collect()
    }

    /// One measured round of `run` and the CPU time per unit each metered process spent in
    /// it; for callers that interleave the rounds of several paths (see [`median_rounds`]).
    pub async fn round<Fut>(&self, run: Fut) -> anyhow::Result<(Round, CpuPerUnit)>
    where
        Fut: std::future::Future<Output = anyhow::Result<Round>>,
    {
        let (started, before) = (Instant::now(), self.read());
        let round = run.await?;
        let units = (round.per_second * started.elapsed().as_secs_f64()).max(1.0);
        let processes = self
            .processes
            .iter()
            .zip(self.read().iter().zip(&before))
            .map(|((name, _), (spent, start))| {
                (
                    name.clone(),
                    spent.saturating_sub(*start).as_secs_f64() * 1e6 / units,
                )
            })
            .collect();
        Ok((round, CpuPerUnit { processes }))
    }

    /// Like [`median`], and also the median CPU time per unit of each metered process.
    pub async fn median<F, Fut>(
        &self,
        rounds: usize,
        mut run: F,
    ) -> anyhow::Result<(Round, CpuPerUnit)>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Round>>,
    {
        run().await?;
        let mut results = Vec::with_capacity(rounds);
        let mut per_unit: Vec<Vec<f64>> = vec![Vec::new(); self.processes.len()];
        for _ in 0..rounds.max(1) {
            let (started, before) = (Instant::now(), self.read());
            let round = run().await?;
            let units = (round.per_second * started.elapsed().as_secs_f64()).max(1.0);
            for ((spent, start), slot) in self.read().iter().zip(&before).zip(&mut per_unit) {
                slot.push(spent.saturating_sub(*start).as_secs_f64() * 1e6 / units);
            }
            results.push(round);
        }
        let processes = self
            .processes
            .iter()
            .zip(per_unit)
            .map(|((name, _), values)| (name.clone(), median_of(values)))
            .collect();
        Ok((combine(&results), CpuPerUnit { processes }))
    }
}

/// Each figure of rounds measured by [`CpuMeter::round`] taken separately: the median (rate,
/// percentiles, and each process's CPU per unit). `None` for no rounds.
pub fn median_rounds(rounds: &[(Round, CpuPerUnit)]) -> Option<(Round, CpuPerUnit)> {
    let (_, first) = rounds.first()?;
    let results: Vec<Round> = rounds.iter().map(|(round, _)| *round).collect();
    let processes = first
        .processes
        .iter()
        .enumerate()
        .map(|(index, (name, _))| {
            let values = rounds
                .iter()
                .filter_map(|(_, cpu)| cpu.processes.get(index).map(|(_, us)| *us))
                .collect();
            (name.clone(), median_of(values))
        })
        .collect();
    Some((combine(&results), CpuPerUnit { processes }))
}
