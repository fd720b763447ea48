//! The `tessera` binary; everything lives in the library.

/// Issuance allocates many small, short-lived buffers from many threads;
/// mimalloc serves them with less contention than the system allocator
/// (ARCHITECTURE.md, decision log).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match tessera::cli::run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
