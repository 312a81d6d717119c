//! Generated protobuf and gRPC code for `taskhive.v1`.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("taskhive.v1");
include!(concat!(env!("OUT_DIR"), "/taskhive.v1.serde.rs"));

/// Encoded descriptors of every taskhive proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/taskhive_descriptor.bin"));
