//! Compiles the protos with protox (pure Rust, no system protoc) and generates tonic code.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/taskhive/v1/scheduler.proto",
        "proto/taskhive/v1/load.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let encoded = prost::Message::encode_to_vec(&fds);
    std::fs::write(out.join("taskhive_descriptor.bin"), &encoded)?;
    tonic_prost_build::configure()
        .bytes(".taskhive.v1")
        .compile_fds(fds)?;
    // serde impls following the proto3 JSON mapping, for the HTTP face's JSON calls.
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .build(&[".taskhive.v1"])?;
    Ok(())
}
