//! Writes the seed corpus of every fuzz target (`scripts/fuzz.sh --seed`).
//!
//!     cargo run -p tessera-fuzz --example seed -- fuzz/corpus

fn main() -> std::io::Result<()> {
    let corpus = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into());
    let written = tessera_fuzz::seeds::write_all(std::path::Path::new(&corpus))?;
    println!("{written} seeds written under {corpus}");
    Ok(())
}
