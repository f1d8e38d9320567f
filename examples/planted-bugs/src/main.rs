//! `planted-bugs`: the `faultline` command line with the planted-bug pipelines registered, so
//! that a minimal case `prop` wrote replays: `cargo run -p planted-bugs -- run FILE --seed N`.

fn main() {
    std::process::exit(faultline::cli::main(planted_bugs::registry()));
}
