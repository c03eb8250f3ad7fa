//! octaneweb's protobuf schema for the Octane LiveLink subset it uses.
//!
//! The `.proto` files live in `proto/` at the top of the repository; they were written from
//! the wire facts in the project's notes, not copied from Octane's SDK. This crate offers them
//! in two forms:
//!
//! - encoded `FileDescriptorSet`s ([`DESCRIPTOR_SET`], [`DESCRIPTOR_SET_GEN1`]), which the
//!   gateway loads at run time like any other schema, and
//! - generated Rust types and tonic services ([`octaneapi`], [`livelinkapi`], [`gen1`]), which
//!   the reference render server implements.
//!
//! The callback stream has two generations that define the same message names, so each
//! generation has its own descriptor set.

#![allow(clippy::all, missing_docs, nonstandard_style)]

/// The `octaneapi` package, with the generation-2 callback stream (notification, then grab).
pub mod octaneapi {
    tonic::include_proto!("octaneapi");
}

/// The `livelinkapi` package: camera, meshes, files.
pub mod livelinkapi {
    tonic::include_proto!("livelinkapi");
}

/// Generation 1 of the callback stream (images inline), for servers started with
/// `--callback-generation 1`. Its shared types are copies of [`octaneapi`]'s, identical on
/// the wire.
pub mod gen1 {
    pub mod octaneapi {
        include!(concat!(env!("OUT_DIR"), "/gen1/octaneapi.rs"));
    }
}

/// The default schema: every file in `proto/octane`, callback stream generation 2, with the
/// google/protobuf files they import. Encoded `google.protobuf.FileDescriptorSet`.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/octane_gen2.bin"));

/// The same schema with callback stream generation 1 (`proto/octane-gen1/callback.proto`).
pub const DESCRIPTOR_SET_GEN1: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/octane_gen1.bin"));
