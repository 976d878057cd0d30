//! Generates the `statesync.v1` messages, server trait and client from `proto/`
//! with protox, a protobuf compiler written in Rust: nothing is downloaded
//! and no `protoc` is needed at build time. With the `json` feature, pbjson-build
//! adds the proto3 JSON mapping (serde) of every message.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is compiled: a target
    // directory shared by checkouts at other paths reuses the compiled script.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = root.join("statesync/v1/statesync.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let descriptors = protox::compile([&proto], [&root])?;
    if std::env::var_os("CARGO_FEATURE_JSON").is_some() {
        pbjson_build::Builder::new()
            .register_descriptors(&prost::Message::encode_to_vec(&descriptors))?
            .build(&[".statesync.v1"])?;
    }
    tonic_prost_build::configure()
        // The server implements only its native methods; the generated
        // defaults answer UNIMPLEMENTED, and its router never sends other
        // calls there.
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
