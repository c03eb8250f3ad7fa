//! Compiles `proto/telemetry.proto` with protox (no protoc needed) into an embedded
//! descriptor set (served by gRPC reflection) and the Rust types of server and client.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use prost::Message as _;

    let proto_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    println!("cargo:rerun-if-changed={}", proto_dir.display());
    let out = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut compiler = protox::Compiler::new([&proto_dir])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files([proto_dir.join("telemetry.proto")])?;
    let set = compiler.file_descriptor_set();
    std::fs::write(out.join("telemetry.bin"), set.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(set)?;
    Ok(())
}
