//! The `faultline` command: see `cli` for what it does.

/// mimalloc, with huge pages, keeping what it frees: see `faultline_alloc` for the measurements.
#[global_allocator]
static ALLOCATOR: faultline_alloc::MiMalloc = faultline_alloc::MiMalloc;

fn main() {
    faultline_alloc::retain_freed_pages();
    faultline_sim::logging::init();
    let args: Vec<String> = std::env::args().collect();
    let code = faultline_sim::cli::main_with(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}
