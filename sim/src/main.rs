//! The `faultline` command: see `cli` for what it does.

/// mimalloc keeps freed memory for reuse instead of returning it to the OS and faulting it back
/// in: a run allocates and frees batches at a high rate, and this halves its wall time. It is
/// built without transparent huge pages (`no_thp`): with them, every page it purges faults back
/// in as a whole 2 MiB page to clear, and on Nexmark q1 the kernel's page clearing took a third
/// of the run (0.99 s of system time against 0.23 s without).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    faultline_sim::logging::init();
    let args: Vec<String> = std::env::args().collect();
    let code = faultline_sim::cli::main_with(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}
