//! Compiles `proto/` with protox (no protoc needed) into two descriptor sets, one per
//! callback-stream generation, and generates the Rust types the reference server uses.

use std::path::{Path, PathBuf};

use prost_types::FileDescriptorSet;

/// Files shared by both generations, relative to `proto/octane`.
const SHARED: &[&str] = &[
    "common.proto",
    "octaneenums.proto",
    "nodeinfos.proto",
    "apirender.proto",
    "scenegraph.proto",
    "livelink.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let octane = root.join("octane");
    let gen1_dir = root.join("octane-gen1");
    println!("cargo:rerun-if-changed={}", root.display());
    let out = PathBuf::from(std::env::var("OUT_DIR")?);

    // Generation 2 (default): the shared files plus callbackstream.proto.
    let mut gen2_files: Vec<PathBuf> = SHARED.iter().map(|f| octane.join(f)).collect();
    gen2_files.push(octane.join("callbackstream.proto"));
    let gen2 = compile(&gen2_files, &[&octane])?;
    write_set(&out.join("octane_gen2.bin"), &gen2)?;

    // Generation 1: the shared files plus octane-gen1/callback.proto.
    let mut gen1_files: Vec<PathBuf> = SHARED.iter().map(|f| octane.join(f)).collect();
    gen1_files.push(gen1_dir.join("callback.proto"));
    let gen1 = compile(&gen1_files, &[&gen1_dir, &octane])?;
    write_set(&out.join("octane_gen1.bin"), &gen1)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(gen2.clone())?;

    // Generation 1 gets a module of its own. Its shared types duplicate generation 2's;
    // they are wire-identical, so the server converts between them by re-encoding.
    let gen1_out = out.join("gen1");
    std::fs::create_dir_all(&gen1_out)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(&gen1_out)
        .compile_fds(gen1)?;
    Ok(())
}

fn compile(files: &[PathBuf], includes: &[&Path]) -> Result<FileDescriptorSet, protox::Error> {
    let mut compiler = protox::Compiler::new(includes)?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(files)?;
    Ok(compiler.file_descriptor_set())
}

fn write_set(path: &Path, set: &FileDescriptorSet) -> std::io::Result<()> {
    use prost::Message as _;
    std::fs::write(path, set.encode_to_vec())
}
