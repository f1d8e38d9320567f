//! The `faultline` command: see `cli` for what it does.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = faultline_sim::cli::main_with(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}
