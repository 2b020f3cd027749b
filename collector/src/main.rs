//! The `logbook` binary. See `logbook --help`.

fn main() -> std::process::ExitCode {
    logbook_collector::cli::main()
}
