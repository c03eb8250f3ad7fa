//! Benchmark-style timing of loading an Octane-SDK-shaped `protodef/` directory.
//!
//! ```text
//! cargo run -p octaneweb-schema --example load_protodef            # generated fixture
//! cargo run -p octaneweb-schema --example load_protodef -- DIR...   # real directories
//! ```
//!
//! Prints the median and best wall time of building the schema (reading, parsing, conflict
//! resolution, type checking) over several runs, with file, service and method counts, and
//! the heap the built schema holds (its pool, source info included).

#[path = "../tests/support/fixture.rs"]
mod fixture;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use octaneweb_schema::SchemaBuilder;

/// Bytes allocated and not yet freed, to tell what a built schema keeps.
static HELD: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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
    let mut held = 0;
    for _ in 0..RUNS {
        drop(last.take());
        let before = HELD.load(Ordering::Relaxed);
        let start = Instant::now();
        let mut builder = SchemaBuilder::new();
        for dir in &dirs {
            builder.add_proto_path(dir)?;
        }
        let schema = builder.build()?;
        times.push(start.elapsed());
        drop(builder);
        held = HELD.load(Ordering::Relaxed) - before;
        last = Some(schema);
    }
    times.sort();
    let naive = naive_load_times(&dirs)?;
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
    println!(
        "heap held by the built schema: {:.2} MiB",
        held as f64 / (1024.0 * 1024.0)
    );
    let start = Instant::now();
    let json = serde_json::to_vec(&schema.to_json())?;
    let json_time = start.elapsed();
    let start = Instant::now();
    let set = schema.file_descriptor_set();
    println!(
        "/schema JSON (comments included) {} bytes in {:.2} ms; descriptor set {} bytes in {:.2} ms",
        json.len(),
        json_time.as_secs_f64() * 1e3,
        set.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    if let Some((kept, total, median)) = naive {
        println!(
            "baseline, naive greedy loader (protox per file, then prost-reflect): kept {kept} of \
             {total} files, median {:.2} ms",
            median.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// Files kept, files seen, median time.
type NaiveResult = (usize, usize, Duration);

/// The approach this crate replaces, timed on the same input for comparison: compile every
/// file separately with protox (which re-parses its imports each time), then add what
/// compiled to one pool, skipping what does not fit. Only for a single directory.
fn naive_load_times(dirs: &[PathBuf]) -> Result<Option<NaiveResult>, Box<dyn std::error::Error>> {
    let [dir] = dirs else {
        return Ok(None);
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".proto"))
        .collect();
    names.sort();
    let mut times = Vec::new();
    let mut kept = 0;
    for _ in 0..3 {
        let start = Instant::now();
        let mut pool = octaneweb_schema::prost_reflect::DescriptorPool::new();
        kept = 0;
        for name in &names {
            let mut resolver = protox::file::ChainFileResolver::new();
            resolver.add(LossyResolver(dir.clone()));
            resolver.add(protox::file::GoogleFileResolver::new());
            let mut compiler = protox::Compiler::with_file_resolver(resolver);
            compiler.include_imports(true);
            if compiler.open_file(name).is_err() {
                continue;
            }
            if pool
                .add_file_descriptor_set(compiler.file_descriptor_set())
                .is_ok()
            {
                kept += 1;
            }
        }
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times.get(1).map(|median| (kept, names.len(), *median)))
}

/// Reads files from one directory, decoding non-UTF-8 bytes lossily (as the SDK needs).
struct LossyResolver(PathBuf);

impl protox::file::FileResolver for LossyResolver {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        let bytes =
            std::fs::read(self.0.join(name)).map_err(|_| protox::Error::file_not_found(name))?;
        protox::file::File::from_source(name, &String::from_utf8_lossy(&bytes))
    }
}
