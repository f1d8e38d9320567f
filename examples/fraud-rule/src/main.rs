//! `fraud-rule`: the `faultline` command line, with the fraud rule registered beside the
//! built-in pipelines. `fraud-rule swarm examples/fraud-rule/scenario.toml --seeds 2000` sweeps
//! it under faults.

fn main() {
    std::process::exit(faultline::cli::main(fraud_rule::registry()));
}
