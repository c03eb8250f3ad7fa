//! Benchmark-style timing of loading an Octane-SDK-shaped `protodef/` directory.
//!
//! ```text
//! cargo run -p octaneweb-schema --example load_protodef            # generated fixture
//! cargo run -p octaneweb-schema --example load_protodef -- DIR...   # real directories
//! ```
//!
//! Prints the median and best wall time of building the schema (reading, parsing, conflict
//! resolution, type checking) over several runs, with file, service and method counts.

#[path = "../tests/support/fixture.rs"]
mod fixture;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use octaneweb_schema::SchemaBuilder;

const RUNS: usize = 15;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let _temp;
    if dirs.is_empty() {
        let temp = tempfile::tempdir()?;
        fixture::octane_like_protodef().write_to(temp.path())?;
        dirs.push(temp.path().to_owned());
        _temp = temp;
    }

    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut builder = SchemaBuilder::new();
        for dir in &dirs {
            builder.add_proto_path(dir)?;
        }
        let schema = builder.build()?;
        times.push(start.elapsed());
        last = Some(schema);
    }
    times.sort();
    let schema = last.ok_or("no run")?;
    let methods: usize = schema.services().iter().map(|s| s.methods().len()).sum();
    println!(
        "loaded {} files, {} services, {} methods; {} files skipped",
        schema.pool().files().len(),
        schema.services().len(),
        methods,
        schema.warnings().len()
    );
    for warning in schema.warnings() {
        println!("  {warning}");
    }
    println!(
        "load time over {RUNS} runs: median {:.2} ms, best {:.2} ms",
        times[RUNS / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
    Ok(())
}
