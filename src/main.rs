//! `varsel`: parses the command line and hands over to the library.

use clap::Parser;

// Parsing threads allocate observations that the async workers free; with
// the system allocator that pattern fragmented the heap until a request of a
// million lines held 300 MB. mimalloc returns such memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = varsel::cli::Cli::parse();
    let (filter, format) = match varsel::config::Settings::load() {
        Ok(s) => (s.log, s.log_format),
        Err(_) => ("info".to_owned(), "text".to_owned()),
    };
    varsel::telemetry::init(&filter, &format);
    match varsel::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
