//! `aisle`: the command-line binary. Parses arguments, installs tracing and
//! glues the library crates together; `anyhow` lives only here.

mod args;
mod commands;
mod config_file;
mod search_bench;

// mimalloc keeps freed memory for reuse: model training allocates and frees
// tensors of tens of MB at every step, which glibc's allocator maps and
// unmaps each time (a third of a SASRec step went to page faults).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use args::{Cli, Command};
use clap::Parser;

/// `aisle ... | head` closes our stdout early: exit quietly with the
/// shell's SIGPIPE status (141) instead of printing a panic.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// A retraining run the server starts (`AISLE_EXIT_WITH_PARENT=1`, its
/// stdin a pipe the server holds) ends when the server dies: the pipe then
/// reads end-of-file. Without it a killed worker's run would go on and
/// might promote while the standby worker, now leading, trains too.
fn exit_with_parent() {
    if std::env::var_os("AISLE_EXIT_WITH_PARENT").is_none_or(|v| v != "1") {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(|| {
            let mut buf = [0u8; 64];
            loop {
                match std::io::Read::read(&mut std::io::stdin(), &mut buf) {
                    Ok(0) | Err(_) => {
                        eprintln!("the server that started this run is gone: stopping");
                        std::process::exit(3);
                    }
                    Ok(_) => {}
                }
            }
        });
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    exit_with_parent();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.iter().any(|a| a == "serve") && argv.iter().any(|a| a == "--print-config") {
        print!("{}", config_file::reference());
        return ExitCode::SUCCESS;
    }
    let argv = match config_file::expand(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(argv);
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AISLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Demo(a) => commands::demo::demo(a),
        Command::DemoData(a) => commands::data::demo_data(a),
        Command::Ingest(a) => commands::data::ingest(a),
        Command::Append(a) => commands::data::append(a),
        Command::Link(a) => commands::data::link(a),
        Command::Stats(a) => commands::data::stats(a),
        Command::Split(a) => commands::data::split(a),
        Command::Presets(a) => commands::data::presets(a),
        Command::Bench(a) => commands::models::bench(a),
        Command::Evaluate(a) => commands::models::evaluate(a),
        Command::Train(a) => commands::models::train(a),
        Command::Serve(a) => commands::serve::serve(*a),
        Command::Search(a) => commands::serve::search(a),
        Command::Index(a) => commands::serve::index(a),
        Command::BenchSearch(a) => search_bench::run(a, &commands::embedder_dir()),
        Command::Models(a) => commands::models::models(a),
        Command::Store(a) => commands::data::store(a),
        Command::Shops(a) => commands::shops::shops(a),
        Command::Experiments(a) => commands::experiments::experiments(a),
        Command::Simulate(a) => commands::simulate::simulate(a),
        Command::Ope(a) => commands::experiments::ope(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
