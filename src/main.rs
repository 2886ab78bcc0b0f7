//! The `burstd` binary: see `burstd --help`.

fn main() -> std::process::ExitCode {
    burstd::cli::main()
}
