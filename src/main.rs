//! The `tessera` binary; everything lives in the library.

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
