fn main() -> std::process::ExitCode {
    mediafs::cli::main()
}
