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
    // Numbers through our own deserializer (src/json_number.rs says why). Fail loudly if a
    // pbjson-build upgrade stops naming its own: the swap would silently stop happening.
    let serde_rs = out.join("taskhive.v1.serde.rs");
    let generated = std::fs::read_to_string(&serde_rs)?;
    const PBJSON_NUMBER: &str = "::pbjson::private::NumberDeserialize";
    if !generated.contains(PBJSON_NUMBER) {
        return Err(format!("{}: no {PBJSON_NUMBER} to replace", serde_rs.display()).into());
    }
    std::fs::write(
        &serde_rs,
        generated.replace(PBJSON_NUMBER, "crate::json_number::NumberDeserialize"),
    )?;
    Ok(())
}
