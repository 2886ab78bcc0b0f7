//! The API's command-line client: AWS-CLI-shaped subcommands printing the daemon's JSON, and
//! `burstd status`, a table of every workload's live balance.

use super::args::ArgError;
use super::exit::{self, EX_SERVICE};
use crate::agent::view::WorkloadView;
use crate::api::client::{call, ClientError};
use crate::api::types::{
    Action, DescribeCreditBalancesRequest, DescribeCreditBalancesResponse,
    DescribeInstanceCreditSpecificationsRequest, ErrorBody, ErrorResponse,
    GetDefaultCreditSpecificationRequest, InstanceCreditSpecificationRequest,
    ModifyDefaultCreditSpecificationRequest, ModifyInstanceCreditSpecificationRequest,
};
use crate::config::DEFAULT_API_SOCKET;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct SocketArg {
    /// The daemon's API socket ([api] socket in its configuration).
    #[arg(long, default_value = DEFAULT_API_SOCKET)]
    pub socket: PathBuf,
}

/// `InstanceId=web,CpuCredits=unlimited`.
fn parse_spec(s: &str) -> Result<(String, String), ArgError> {
    let (mut id, mut credits) = (None, None);
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("InstanceId", v)) => id = Some(v.to_string()),
            Some(("CpuCredits", v)) => credits = Some(v.to_string()),
            _ => return Err(ArgError::SpecPart(part.to_string())),
        }
    }
    match (id, credits) {
        (Some(i), Some(c)) => Ok((i, c)),
        _ => Err(ArgError::SpecIncomplete),
    }
}

#[derive(clap::Args, Debug)]
pub struct ModifyInstanceArgs {
    /// One or more `InstanceId=NAME,CpuCredits=standard|unlimited`.
    #[arg(long = "instance-credit-specification", required = true, num_args = 1.., value_parser = parse_spec)]
    pub specs: Vec<(String, String)>,
    /// Check the permission only; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Idempotency token (up to 64 ASCII characters).
    #[arg(long)]
    pub client_token: Option<String>,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    #[arg(long, num_args = 1..)]
    pub instance_ids: Option<Vec<String>>,
    /// Page size, 5–1000.
    #[arg(long)]
    pub max_results: Option<i64>,
    #[arg(long)]
    pub next_token: Option<String>,
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(clap::Args, Debug)]
pub struct ModifyDefaultArgs {
    /// t2, t3, t3a or t4g.
    #[arg(long)]
    pub instance_family: String,
    /// standard or unlimited.
    #[arg(long)]
    pub cpu_credits: String,
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(clap::Args, Debug)]
pub struct GetDefaultArgs {
    /// t2, t3, t3a or t4g.
    #[arg(long)]
    pub instance_family: String,
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Refresh every SECONDS (default 2) until interrupted.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<f64>,
    /// The daemon's JSON (DescribeCreditBalances) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("burstd: cannot start the runtime: {e}"))
        .ok()
}

fn client_error(e: &ClientError) -> ExitCode {
    exit::fail(exit::of_client(e), e)
}

/// The daemon's error of a failed answer: its code and message.
fn error_of(v: Value) -> ErrorBody {
    serde_json::from_value::<ErrorResponse>(v)
        .map(|e| e.error)
        .unwrap_or_else(|_| ErrorBody {
            code: "Unknown".into(),
            message: String::new(),
        })
}

/// Sends one request; prints the JSON answer (stdout) or the daemon's error (stderr).
fn one(socket: &SocketArg, action: Action, body: &impl Serialize) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(call(&socket.socket, action, body)) {
        Err(e) => client_error(&e),
        Ok((200, v)) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok((_, v)) => {
            let e = error_of(v);
            eprintln!(
                "An error occurred ({}) when calling the {} operation: {}",
                e.code,
                action.name(),
                e.message
            );
            ExitCode::from(EX_SERVICE)
        }
    }
}

pub fn modify_instance(a: ModifyInstanceArgs) -> ExitCode {
    let body = ModifyInstanceCreditSpecificationRequest {
        dry_run: a.dry_run,
        client_token: a.client_token,
        instance_credit_specifications: a
            .specs
            .into_iter()
            .map(
                |(instance_id, cpu_credits)| InstanceCreditSpecificationRequest {
                    instance_id,
                    cpu_credits,
                },
            )
            .collect(),
    };
    one(&a.socket, Action::ModifyInstanceCreditSpecification, &body)
}

pub fn describe(a: DescribeArgs) -> ExitCode {
    let body = DescribeInstanceCreditSpecificationsRequest {
        dry_run: a.dry_run,
        instance_ids: a.instance_ids,
        max_results: a.max_results,
        next_token: a.next_token,
    };
    one(
        &a.socket,
        Action::DescribeInstanceCreditSpecifications,
        &body,
    )
}

pub fn modify_default(a: ModifyDefaultArgs) -> ExitCode {
    let body = ModifyDefaultCreditSpecificationRequest {
        dry_run: a.dry_run,
        instance_family: a.instance_family,
        cpu_credits: a.cpu_credits,
    };
    one(&a.socket, Action::ModifyDefaultCreditSpecification, &body)
}

pub fn get_default(a: GetDefaultArgs) -> ExitCode {
    let body = GetDefaultCreditSpecificationRequest {
        dry_run: a.dry_run,
        instance_family: a.instance_family,
    };
    one(&a.socket, Action::GetDefaultCreditSpecification, &body)
}

fn duration(secs: Option<f64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s <= 0.0 => "now".into(),
        Some(s) if s < 120.0 => format!("{s:.0}s"),
        Some(s) if s < 7200.0 => format!("{:.0}m", s / 60.0),
        Some(s) => format!("{:.1}h", s / 3600.0),
    }
}

/// The human table of `burstd status`.
pub fn table(rows: &[WorkloadView]) -> String {
    let mut out = format!(
        "{:<28} {:<10} {:<9} {:>9} {:>9} {:>8} {:>7} {:>5} {:>10}\n",
        "WORKLOAD",
        "PROFILE",
        "MODE",
        "BALANCE",
        "SURPLUS",
        "CEILING",
        "USAGE",
        "HELD",
        "EXHAUSTED"
    );
    for w in rows {
        out.push_str(&format!(
            "{:<28} {:<10} {:<9} {:>9.2} {:>9.2} {:>8.2} {:>7.2} {:>5} {:>10}\n",
            w.instance_id,
            w.profile,
            w.cpu_credits,
            w.cpu_credit_balance,
            w.surplus_credit_balance,
            w.ceiling_cores.unwrap_or(0.0),
            w.usage_cores,
            if w.held_at_baseline { "yes" } else { "no" },
            duration(w.seconds_until_exhausted),
        ));
    }
    if rows.is_empty() {
        out.push_str("(no workload is running)\n");
    }
    out
}

pub fn status(a: StatusArgs) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    loop {
        let answer = rt.block_on(call(
            &a.socket.socket,
            Action::DescribeCreditBalances,
            &DescribeCreditBalancesRequest::default(),
        ));
        match answer {
            Err(e) => return client_error(&e),
            Ok((200, v)) => {
                let text = if a.json {
                    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
                } else {
                    // Read into the typed view: a renamed field fails here, loudly.
                    match serde_json::from_value::<DescribeCreditBalancesResponse>(v) {
                        Ok(r) => table(&r.credit_balances),
                        Err(e) => {
                            return exit::fail(
                                exit::EX_UNAVAILABLE,
                                ClientError::BadAnswer(e.to_string()),
                            )
                        }
                    }
                };
                if a.watch.is_some() {
                    // Clear the screen and go home, like watch(1).
                    print!("\x1b[H\x1b[2J");
                }
                print!("{text}");
            }
            Ok((_, v)) => {
                let e = error_of(v);
                eprintln!("burstd: {}: {}", e.code, e.message);
                return ExitCode::from(EX_SERVICE);
            }
        }
        match a.watch {
            Some(s) => std::thread::sleep(Duration::from_secs_f64(s.clamp(0.1, 3600.0))),
            None => return ExitCode::SUCCESS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_like_the_aws_cli() {
        assert_eq!(
            parse_spec("InstanceId=web,CpuCredits=unlimited"),
            Ok(("web".into(), "unlimited".into()))
        );
        assert!(parse_spec("InstanceId=web").is_err());
        assert!(parse_spec("Id=web,CpuCredits=standard").is_err());
    }

    #[test]
    fn table_shows_every_column() {
        let v = serde_json::json!({"CreditBalances": [{"InstanceId": "web", "Profile": "t3.micro",
            "Family": "t3", "CpuCredits": "standard", "Running": true,
            "CpuCreditBalance": 12.5, "EarnedCreditBalance": 12.5, "LaunchCredits": 0.0,
            "SurplusCreditBalance": 0.0, "CreditsSpent": 1.0, "CreditsEarnedTotal": 13.5,
            "CreditsDiscarded": 0.0, "SurplusCreditsCharged": 0.0, "SurplusCostDollars": 0.0,
            "CpuUsageSeconds": 60.0, "CpuThrottledSeconds": 0.0, "CpuThrottledPeriods": 0,
            "CeilingCores": 2.0, "BaselineCores": 0.2, "UsageCores": 0.5,
            "HeldAtBaseline": false, "SecondsUntilExhausted": 1800.0}]});
        // What the daemon answers reads into the typed view, field names and all.
        let r: DescribeCreditBalancesResponse = serde_json::from_value(v).unwrap();
        let t = table(&r.credit_balances);
        assert!(t.starts_with("WORKLOAD"));
        let row = t.lines().nth(1).unwrap();
        for cell in [
            "web", "t3.micro", "standard", "12.50", "0.00", "2.00", "0.50", "no", "30m",
        ] {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        assert!(table(&[]).contains("no workload is running"));
    }
}
