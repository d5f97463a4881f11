//! `ollama` test double: a real executable that, over HTTP and on the command line, behaves
//! like Ollama 0.32.x (or the version in `OLLAMA_DOUBLE_VERSION`), with scriptable faults.
//! See README.md in this crate for the interface.

mod api;
mod cli;
mod control;
mod engine;
mod fixtures;
mod gojson;
mod host;
mod log;
mod openai;
mod reply;
mod routes;
mod server;
mod timefmt;
mod version;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("serve" | "start") => server::run(),
        Some("runner") => server::run_runner(),
        Some("-v" | "--version") => cli::version(),
        Some("list" | "ls") => cli::list(),
        Some("ps") => cli::ps(),
        None | Some("-h" | "--help" | "help") => cli::help(),
        Some(cmd) if cli::OTHER_COMMANDS.contains(&cmd) => cli::unsupported(cmd),
        Some(cmd) => cli::unknown(cmd),
    };
    std::process::exit(code);
}
