//! The `faultline` command: see `cli` for what it does.

/// mimalloc keeps freed memory for reuse instead of returning it to the OS and faulting it back
/// in: a run allocates and frees batches at a high rate, and this halves its wall time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    faultline_sim::logging::init();
    let args: Vec<String> = std::env::args().collect();
    let code = faultline_sim::cli::main_with(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}
