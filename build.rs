//! Compiles the public gRPC API.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=src/proto/ecommerce/v1/api.proto");
    tonic_prost_build::configure()
        .compile_protos(&["src/proto/ecommerce/v1/api.proto"], &["src/proto"])?;
    Ok(())
}
