//! Compiles the peer protocol with protox (pure Rust), so `cargo build` needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/sorcha/peer/v1/session.proto"];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
