//! The API's command-line client: AWS-CLI-shaped subcommands printing the daemon's JSON, and
//! `burstd status`, a table of every workload's live balance.

use super::args::ArgError;
use super::exit::{self, EX_SERVICE};
use crate::api::client::{call, ClientError};
use crate::api::types::Action;
use crate::config::DEFAULT_API_SOCKET;
use serde_json::{json, Value};
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

/// Sends one request; prints the JSON answer (stdout) or the daemon's error (stderr).
fn one(socket: &SocketArg, action: Action, body: Value) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(call(&socket.socket, action, &body)) {
        Err(e) => client_error(&e),
        Ok((200, v)) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok((_, v)) => {
            eprintln!(
                "An error occurred ({}) when calling the {} operation: {}",
                v["Error"]["Code"].as_str().unwrap_or("Unknown"),
                action.name(),
                v["Error"]["Message"].as_str().unwrap_or("")
            );
            ExitCode::from(EX_SERVICE)
        }
    }
}

pub fn modify_instance(a: ModifyInstanceArgs) -> ExitCode {
    let specs: Vec<Value> = a
        .specs
        .iter()
        .map(|(i, c)| json!({"InstanceId": i, "CpuCredits": c}))
        .collect();
    let mut body = json!({"InstanceCreditSpecifications": specs, "DryRun": a.dry_run});
    if let Some(t) = a.client_token {
        body["ClientToken"] = json!(t);
    }
    one(&a.socket, Action::ModifyInstanceCreditSpecification, body)
}

pub fn describe(a: DescribeArgs) -> ExitCode {
    let mut body = json!({"DryRun": a.dry_run});
    if let Some(ids) = a.instance_ids {
        body["InstanceIds"] = json!(ids);
    }
    if let Some(m) = a.max_results {
        body["MaxResults"] = json!(m);
    }
    if let Some(t) = a.next_token {
        body["NextToken"] = json!(t);
    }
    one(
        &a.socket,
        Action::DescribeInstanceCreditSpecifications,
        body,
    )
}

pub fn modify_default(a: ModifyDefaultArgs) -> ExitCode {
    let body = json!({"InstanceFamily": a.instance_family, "CpuCredits": a.cpu_credits, "DryRun": a.dry_run});
    one(&a.socket, Action::ModifyDefaultCreditSpecification, body)
}

pub fn get_default(a: GetDefaultArgs) -> ExitCode {
    let body = json!({"InstanceFamily": a.instance_family, "DryRun": a.dry_run});
    one(&a.socket, Action::GetDefaultCreditSpecification, body)
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
pub fn table(v: &Value) -> String {
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
    let empty = vec![];
    let rows = v["CreditBalances"].as_array().unwrap_or(&empty);
    for w in rows {
        let f = |k: &str| w[k].as_f64().unwrap_or(0.0);
        out.push_str(&format!(
            "{:<28} {:<10} {:<9} {:>9.2} {:>9.2} {:>8.2} {:>7.2} {:>5} {:>10}\n",
            w["InstanceId"].as_str().unwrap_or("?"),
            w["Profile"].as_str().unwrap_or("?"),
            w["CpuCredits"].as_str().unwrap_or("?"),
            f("CpuCreditBalance"),
            f("SurplusCreditBalance"),
            f("CeilingCores"),
            f("UsageCores"),
            if w["HeldAtBaseline"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            duration(w["SecondsUntilExhausted"].as_f64()),
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
            &json!({}),
        ));
        match answer {
            Err(e) => return client_error(&e),
            Ok((200, v)) => {
                let text = if a.json {
                    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
                } else {
                    table(&v)
                };
                if a.watch.is_some() {
                    // Clear the screen and go home, like watch(1).
                    print!("\x1b[H\x1b[2J");
                }
                print!("{text}");
            }
            Ok((_, v)) => {
                eprintln!(
                    "burstd: {}: {}",
                    v["Error"]["Code"].as_str().unwrap_or("Unknown"),
                    v["Error"]["Message"].as_str().unwrap_or("")
                );
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
        let v = json!({"CreditBalances": [{"InstanceId": "web", "Profile": "t3.micro", "CpuCredits": "standard",
            "CpuCreditBalance": 12.5, "SurplusCreditBalance": 0.0, "CeilingCores": 2.0, "UsageCores": 0.5,
            "HeldAtBaseline": false, "SecondsUntilExhausted": 1800.0}]});
        let t = table(&v);
        assert!(t.starts_with("WORKLOAD"));
        let row = t.lines().nth(1).unwrap();
        for cell in [
            "web", "t3.micro", "standard", "12.50", "0.00", "2.00", "0.50", "no", "30m",
        ] {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        assert!(table(&json!({"CreditBalances": []})).contains("no workload is running"));
    }
}
