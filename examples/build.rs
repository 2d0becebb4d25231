//! Generates the `grpc-chat` service from `proto/chat.proto` with protox, a
//! pure-Rust protobuf compiler: no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/chat.proto");
    let descriptors = protox::compile(["chat.proto"], ["../proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
