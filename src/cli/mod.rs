//! The command-line front end: one `burstd` binary with subcommands.

use clap::{Parser, Subcommand};

pub mod advise;
pub mod args;
pub mod client;
pub mod daemon_cmd;
pub mod demo;
pub mod exec;
pub mod exit;
pub mod logging;
pub mod profiles;
pub mod record;
pub mod simulate;
use std::process::ExitCode;

/// burstd gives Linux cgroups the CPU-credit behaviour of cloud burstable instances
/// (EC2 T2/T3/T3a/T4g, Azure B): a credit bucket per workload, a baseline when credits run
/// out in standard mode, surplus credits and their cost in unlimited mode.
#[derive(Parser, Debug)]
#[command(name = "burstd", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the agent: account every configured workload's CPU credits from the kernel's
    /// counters and hold standard workloads at their baseline when their credits run out.
    Daemon(daemon_cmd::DaemonArgs),
    /// Validate a configuration file against this host: layout, permissions, sched_ext,
    /// state file, and whether each workload's cgroup is there.
    Check(daemon_cmd::CheckArgs),
    /// List the built-in profiles (instance types) with their credit figures.
    Profiles,
    /// Replay a utilisation trace (CSV) through the credit model: CloudWatch-like metrics per
    /// step, a summary with the surplus cost, optionally a chart and a price comparison.
    Simulate(simulate::SimulateArgs),
    /// Replay a trace on every burstable type that can carry it (both modes) and on fixed-size
    /// types, ranked by monthly cost, with a recommendation. Prices: us-east-1, June 2024.
    Advise(advise::AdviseArgs),
    /// Write a workload's measured CPU usage (a cgroup, systemd unit or process, from the
    /// kernel's counters) as a trace for `simulate` and `advise`; Ctrl-C ends it cleanly.
    Record(record::RecordArgs),
    /// Run a command in its own cgroup under a profile's credit rules, for its lifetime; exit
    /// with its exit status. No daemon needed.
    Exec(exec::ExecArgs),
    /// Watch a busy loop run out of credits and be held at its baseline (standard), then
    /// spend surplus credits (unlimited), measured from the kernel's counters.
    Demo(demo::DemoArgs),
    /// Keep one core busy (the demo's workload).
    #[command(hide = true)]
    Burn(exec::BurnArgs),
    /// Switch workloads between standard and unlimited (EC2's action of the same name).
    ModifyInstanceCreditSpecification(client::ModifyInstanceArgs),
    /// Each workload's credit mode, paginated (EC2's action of the same name).
    DescribeInstanceCreditSpecifications(client::DescribeArgs),
    /// Set the mode new workloads of a family start in when their config gives none.
    ModifyDefaultCreditSpecification(client::ModifyDefaultArgs),
    /// The mode new workloads of a family start in.
    GetDefaultCreditSpecification(client::GetDefaultArgs),
    /// A live table of every running workload: balance, surplus, ceiling, usage, held.
    Status(client::StatusArgs),
}

/// Parses the command line and runs it; the binary's `main` is just this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Profiles => profiles::run(),
        Command::Daemon(a) => daemon_cmd::run_daemon(a),
        Command::Check(a) => daemon_cmd::run_check(a),
        Command::Simulate(args) => simulate::run(&args),
        Command::Advise(args) => advise::run(&args),
        Command::Record(args) => record::run(args),
        Command::Exec(a) => exec::run_exec(a),
        Command::Demo(a) => demo::run_demo(a),
        Command::Burn(a) => exec::run_burn(a),
        Command::ModifyInstanceCreditSpecification(a) => client::modify_instance(a),
        Command::DescribeInstanceCreditSpecifications(a) => client::describe(a),
        Command::ModifyDefaultCreditSpecification(a) => client::modify_default(a),
        Command::GetDefaultCreditSpecification(a) => client::get_default(a),
        Command::Status(a) => client::status(a),
    }
}
