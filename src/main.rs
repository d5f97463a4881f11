fn main() -> std::process::ExitCode {
    openclawd::cli::main()
}
