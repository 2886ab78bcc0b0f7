//! Configuration tests: the example from the issue parses, and every error says where and why.

use super::*;
use crate::credit::{Credits, Mode, Persistence};

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(Path::new("/etc/burstd/burstd.toml"), text)
}

fn err(text: &str) -> String {
    match parse_str(text) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

const EXAMPLE: &str = r#"
[agent]
# cgroup_root = "/sys/fs/cgroup"
state_dir = "/var/lib/burstd"
time_scale = 1.0
period_us = 100000
on_exit = "restore"
launch_credit_limit = 100

[[workload]]
name = "web"
cgroup = "system.slice/nginx.service"
profile = "t3.micro"

[[workload]]
name = "db"
unit = "postgresql.service"

[[workload]]
name = "containers"
match = "system.slice/docker-*.scope"
profile = "t3.small"

[[workload]]
name = "batch"
cgroup = "batch"
profile = "tiny"
mode = "unlimited"
initial_credits = 12.5

[profiles.tiny]
vcpus = 1
credits_per_hour = 6
"#;

#[test]
fn the_documented_example_parses() {
    let c = parse_str(EXAMPLE).unwrap();
    assert_eq!(c.agent.period_us, 100_000);
    assert_eq!(c.agent.time_scale_milli, 1000);
    assert_eq!(c.agent.on_exit, OnExit::Restore);
    assert_eq!(c.workloads.len(), 4);
    let web = &c.workloads[0];
    assert_eq!(
        web.source,
        Source::Cgroup("system.slice/nginx.service".into())
    );
    assert_eq!(
        (web.profile.name.as_str(), web.mode),
        ("t3.micro", Mode::Unlimited)
    );
    assert_eq!(
        c.workloads[1].source,
        Source::Unit("postgresql.service".into())
    );
    assert_eq!(c.workloads[1].profile.name, "t3.micro", "default profile");
    assert_eq!(
        c.workloads[2].source,
        Source::Match("system.slice/docker-*.scope".into())
    );
    let batch = &c.workloads[3];
    assert_eq!(batch.profile.max_earned, Credits::whole(144));
    assert_eq!(batch.initial_credits, Credits::milli(12_500));
    assert_eq!(batch.mode, Mode::Unlimited);
}

#[test]
fn an_empty_file_is_a_valid_config_with_defaults() {
    let c = parse_str("").unwrap();
    assert!(c.workloads.is_empty());
    assert_eq!(c.agent.state_dir, PathBuf::from("/var/lib/burstd"));
    assert_eq!(c.agent.max_interval_ms, 1000);
    assert_eq!(c.agent.policy.release_above, Credits::milli(100));
}

#[test]
fn unknown_key_names_line_column_and_key() {
    let e = err("[agent]\nstate_dir = \"/x\"\ntime_scal = 2.0\n");
    assert!(
        e.starts_with("/etc/burstd/burstd.toml:3:1: unknown field `time_scal`"),
        "{e}"
    );
    assert!(e.contains("time_scale"), "lists the allowed keys: {e}");
}

#[test]
fn bad_time_scale() {
    let e = err("[agent]\ntime_scale = -2.0\n");
    assert_eq!(
        e,
        "/etc/burstd/burstd.toml:2:14: [agent] time_scale = -2: must be a number from 0.001 to 1000000 (1.0 = real time)"
    );
}

#[test]
fn bad_period() {
    let e = err("[agent]\nperiod_us = 500\n");
    assert!(
        e.contains(":2:13: [agent] period_us = 500: the kernel allows 1000 to 1000000"),
        "{e}"
    );
}

#[test]
fn bad_on_exit_lists_allowed_values() {
    let e = err("[agent]\non_exit = \"reset\"\n");
    assert!(
        e.contains(":2:11:") && e.contains("restore") && e.contains("keep"),
        "{e}"
    );
}

#[test]
fn wrong_type_is_reported_where_it_is() {
    let e = err("[agent]\nperiod_us = \"fast\"\n");
    assert!(
        e.contains(":2:13:") && e.contains("invalid type: string \"fast\", expected i64"),
        "{e}"
    );
}

#[test]
fn unknown_profile_lists_known_ones() {
    let e = err("[[workload]]\nname = \"w\"\ncgroup = \"a\"\nprofile = \"t9.huge\"\n");
    assert!(
        e.contains(
            ":4:11: [[workload]] \"w\": profile: unknown profile \"t9.huge\"; accepted names (in any case): t2.nano"
        ),
        "{e}"
    );
    assert!(e.contains("B4s_v2 or Standard_B4s_v2"), "{e}");
}

#[test]
fn exactly_one_source() {
    let e = err("[[workload]]\nname = \"w\"\n");
    assert!(
        e.contains(":2:8:") && e.contains("needs one of cgroup"),
        "{e}"
    );
    let e = err("[[workload]]\nname = \"w\"\ncgroup = \"a\"\nunit = \"a.service\"\n");
    assert!(
        e.contains(":4:8:") && e.contains("unit given together with cgroup"),
        "{e}"
    );
}

#[test]
fn bad_cgroup_path() {
    let e = err("[[workload]]\nname = \"w\"\ncgroup = \"a/../b\"\n");
    assert!(
        e.contains(":3:10:") && e.contains("below the cgroup root"),
        "{e}"
    );
}

#[test]
fn unlimited_on_azure_is_refused() {
    let e = err(
        "[[workload]]\nname = \"w\"\ncgroup = \"a\"\nprofile = \"B1s\"\nmode = \"unlimited\"\n",
    );
    assert!(
        e.contains(":5:8:") && e.contains("does not allow unlimited"),
        "{e}"
    );
}

#[test]
fn bad_mode_value() {
    let e = err("[[workload]]\nname = \"w\"\ncgroup = \"a\"\nmode = \"burst\"\n");
    assert!(
        e.contains(":4:8:") && e.contains("allowed are \"standard\" and \"unlimited\""),
        "{e}"
    );
}

#[test]
fn initial_credits_checked_against_the_limit() {
    let e = err("[[workload]]\nname = \"w\"\ncgroup = \"a\"\nprofile = \"t2.nano\"\ninitial_credits = 100\n");
    assert!(
        e.contains(":5:19:") && e.contains("accrual limit of 72"),
        "{e}"
    );
    let e = err("[[workload]]\nname = \"w\"\ncgroup = \"a\"\ninitial_credits = -1\n");
    assert!(e.contains("must be a number ≥ 0"), "{e}");
}

#[test]
fn duplicate_and_malformed_names() {
    let e = err(
        "[[workload]]\nname = \"w\"\ncgroup = \"a\"\n[[workload]]\nname = \"w\"\ncgroup = \"b\"\n",
    );
    assert!(e.contains(":5:8:") && e.contains("used twice"), "{e}");
    let e = err("[[workload]]\nname = \"a b\"\ncgroup = \"a\"\n");
    assert!(e.contains(":2:8:") && e.contains("letters, digits"), "{e}");
}

#[test]
fn custom_profile_errors() {
    let e = err("[profiles.\"t2.micro\"]\nvcpus = 1\ncredits_per_hour = 6\n");
    assert!(
        e.contains(":1:1:") && e.contains("\"t2.micro\" is a built-in profile"),
        "{e}"
    );
    let e = err("[profiles.big]\nvcpus = 1\ncredits_per_hour = 90\n");
    assert!(e.contains("exceeds what 1 vCPU can spend"), "{e}");
    let e = err("[profiles.p]\nvcpus = 1\ncredits_per_hour = 6.0001\n");
    assert!(
        e.contains(":3:20:") && e.contains("at most 3 decimals"),
        "{e}"
    );
    let e = err("[profiles.p]\nvcpus = 1\ncredits_per_hour = 6\npersistence = \"forever\"\n");
    assert!(
        e.contains(":4:15:") && e.contains("\"lost\", \"kept\""),
        "{e}"
    );
    let c =
        parse_str("[profiles.p]\nvcpus = 2\ncredits_per_hour = 81.6\npersistence = 7\n").unwrap();
    assert_eq!(
        c.custom_profiles["p"].persistence,
        Persistence::KeptFor {
            seconds: 7 * 86_400
        }
    );
}

#[test]
fn syntax_error_has_a_place() {
    let e = err("[agent\n");
    assert!(e.starts_with("/etc/burstd/burstd.toml:1:"), "{e}");
}

#[test]
fn missing_file_is_a_read_error() {
    let e = load(Path::new("/nonexistent/burstd.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/nonexistent/burstd.toml: cannot read:"),
        "{e}"
    );
}

#[test]
fn the_shipped_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/burstd.toml");
    let c = load(&path).unwrap();
    assert_eq!(c.workloads.len(), 1);
    assert_eq!(c.workloads[0].profile.name, "t3.micro");
}

#[test]
fn metrics_and_api_sections_default_and_parse() {
    let c = parse_str("").unwrap();
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9749".parse().unwrap()));
    assert_eq!(c.api.socket, Some(PathBuf::from("/run/burstd/api.sock")));
    assert_eq!(
        (c.api.group.as_deref(), c.api.admin_group.as_deref()),
        (None, None)
    );
    let c = parse_str(
        "[metrics]\nlisten = \"[::1]:9100\"\n[api]\nsocket = \"/tmp/b.sock\"\ngroup = \"burstd\"\nadmin_group = \"wheel\"\n",
    )
    .unwrap();
    assert_eq!(c.metrics.listen, Some("[::1]:9100".parse().unwrap()));
    assert_eq!(c.api.socket, Some(PathBuf::from("/tmp/b.sock")));
    assert_eq!(c.api.group.as_deref(), Some("burstd"));
    assert_eq!(c.api.admin_group.as_deref(), Some("wheel"));
    assert_eq!(
        parse_str("[metrics]\nlisten = \"\"\n")
            .unwrap()
            .metrics
            .listen,
        None
    );
    assert_eq!(
        parse_str("[metrics]\nenabled = false\n")
            .unwrap()
            .metrics
            .listen,
        None
    );
    assert_eq!(
        parse_str("[api]\nsocket = \"\"\n").unwrap().api.socket,
        None
    );
    assert_eq!(
        parse_str("[api]\nenabled = false\n").unwrap().api.socket,
        None
    );
}

#[test]
fn servers_max_connections_default_parse_and_bounds() {
    let c = parse_str("").unwrap();
    assert_eq!((c.metrics.max_connections, c.api.max_connections), (64, 64));
    let c = parse_str("[metrics]\nmax_connections = 10\n[api]\nmax_connections = 2\n").unwrap();
    assert_eq!((c.metrics.max_connections, c.api.max_connections), (10, 2));
    let e = err("[metrics]\nmax_connections = 0\n");
    assert!(
        e.contains(":2:19: [metrics] max_connections = 0: must be 1 to 65536"),
        "{e}"
    );
    let e = err("[api]\nmax_connections = -1\n");
    assert!(
        e.contains("[api] max_connections = -1: must be 1 to 65536"),
        "{e}"
    );
}

#[test]
fn metrics_and_api_errors_say_where_and_what() {
    let e = err("[metrics]\nlisten = \"localhost\"\n");
    assert!(
        e.contains(":2:10: [metrics] listen = \"localhost\": must be an IP address and port"),
        "{e}"
    );
    let e = err("[metrics]\nport = 1\n");
    assert!(
        e.contains(":2:1") && e.contains("unknown field `port`"),
        "{e}"
    );
    let e = err("[api]\nsocket = \"api.sock\"\n");
    assert!(
        e.contains(":2:10: [api] socket = \"api.sock\": must be an absolute file path"),
        "{e}"
    );
    let long = format!("[api]\nsocket = \"/{}\"\n", "a".repeat(120));
    assert!(err(&long).contains("at most 107"));
    let e = err("[api]\ngroup = \"bad group\"\n");
    assert!(
        e.contains(":2:9: [api] group = \"bad group\": must be a group name"),
        "{e}"
    );
    let e = err("[api]\nadmin_group = 7\n");
    assert!(e.contains(":2:15") && e.contains("invalid type"), "{e}");
}

#[test]
fn an_explicit_mode_is_remembered_as_such() {
    let c = parse_str(EXAMPLE).unwrap();
    assert!(!c.workloads[0].mode_explicit);
    assert!(c.workloads[3].mode_explicit);
}

/// Issue 13 item 5: `g/x` beside a glob named `g` (which derives `g/<last element>`) made the
/// daemon flap between two cgroups under one name, granting launch credits at every flap.
#[test]
fn a_name_under_a_globs_name_is_refused() {
    let e = err("[[workload]]\nname = \"g/x\"\ncgroup = \"solo/x\"\n[[workload]]\nname = \"g\"\nmatch = \"gl/*\"\n");
    assert!(
        e.contains(":2:8: [[workload]] name \"g/x\" is under \"g\", whose match = … names its matches \"g\"/<last element>"),
        "{e}"
    );
    // A name that merely starts with the same letters is no collision.
    assert!(parse_str("[[workload]]\nname = \"gx\"\ncgroup = \"solo/x\"\n[[workload]]\nname = \"g\"\nmatch = \"gl/*\"\n").is_ok());
}

/// Issue 13 item 13: cgroup paths with NUL or newline are refused, with the value escaped.
#[test]
fn control_characters_in_cgroup_paths_are_refused() {
    let e = err("[[workload]]\nname = \"w\"\ncgroup = \"a\\u0000b\"\n");
    assert_eq!(
        e,
        "/etc/burstd/burstd.toml:3:10: [[workload]] \"w\": cgroup = \"a\\0b\": must be a path below the cgroup root with no . or .. or empty elements and no control characters (NUL, newline), like \"system.slice/nginx.service\""
    );
    let e = err("[[workload]]\nname = \"w\"\ncgroup = \"a\\nb\"\n");
    assert!(e.contains(":3:10: [[workload]] \"w\": cgroup = \"a\\nb\": must be a path below the cgroup root with no . or .. or empty elements and no control characters"), "{e}");
    let e = err("[[workload]]\nname = \"w\"\nmatch = \"x/*\\n\"\n");
    assert!(
        e.contains(":3:9: [[workload]] \"w\": match = \"x/*\\n\": must be a glob"),
        "{e}"
    );
    let e = err("[[workload]]\nname = \"w\"\nunit = \"a\\n.service\"\n");
    assert!(
        e.contains(
            ":3:8: [[workload]] \"w\": unit = \"a\\n.service\": must be a systemd unit name"
        ),
        "{e}"
    );
}

/// Issue 13 item 13: `cgroup_root` must name one directory wherever burstd runs: absolute, no
/// `.`, `..` or empty elements, no control characters.
#[test]
fn cgroup_root_must_be_absolute_and_plain() {
    for (root, shown) in [
        ("sys/fs/cgroup", "\"sys/fs/cgroup\""),
        ("", "\"\""),
        ("/sys/fs/../cgroup", "\"/sys/fs/../cgroup\""),
        ("/sys//fs/cgroup", "\"/sys//fs/cgroup\""),
        ("/sys/fs/cgroup\\n", "\"/sys/fs/cgroup\\n\""),
    ] {
        let e = err(&format!("[agent]\ncgroup_root = \"{root}\"\n"));
        assert_eq!(
            e,
            format!("/etc/burstd/burstd.toml:2:15: [agent] cgroup_root = {shown}: must be an absolute path with no . or .. or empty elements and no control characters, like \"/sys/fs/cgroup\" (or leave it out to detect the hierarchy)"),
        );
    }
    for ok in ["/sys/fs/cgroup", "/sys/fs/cgroup/", "/"] {
        let c = parse_str(&format!("[agent]\ncgroup_root = \"{ok}\"\n")).unwrap();
        assert_eq!(c.agent.cgroup_root, Some(PathBuf::from(ok)));
    }
}

/// Issue 13 item 13: an absolute filesystem path given as a workload's cgroup was read as a
/// cgroup of that name under the root ("/sys/fs/cgroup/cpu/web" → `<root>/sys/fs/cgroup/cpu/web`).
#[test]
fn a_cgroup_written_with_the_root_is_refused_with_what_was_meant() {
    let e = err("[[workload]]\nname = \"w\"\ncgroup = \"/sys/fs/cgroup/cpu/system.slice/web\"\n");
    assert_eq!(
        e,
        "/etc/burstd/burstd.toml:3:10: [[workload]] \"w\": cgroup = \"/sys/fs/cgroup/cpu/system.slice/web\": a path below the cgroup root is wanted, not the filesystem path (this would be read as a cgroup named \"sys/fs/cgroup/cpu/system.slice/web\" under the root); write \"system.slice/web\""
    );
    let e = err("[agent]\ncgroup_root = \"/mnt/cg\"\n[[workload]]\nname = \"w\"\nmatch = \"/mnt/cg/docker/*\"\n");
    assert!(e.contains(":5:9: [[workload]] \"w\": match = \"/mnt/cg/docker/*\": a path below the cgroup root is wanted"), "{e}");
    assert!(e.ends_with("write \"docker/*\""), "{e}");
    // A leading '/' on a path below the root stays allowed (as /proc/PID/cgroup shows it).
    let c = parse_str("[[workload]]\nname = \"w\"\ncgroup = \"/system.slice/web\"\n").unwrap();
    assert_eq!(
        c.workloads[0].source,
        Source::Cgroup("system.slice/web".into())
    );
}

/// Issue 13 item 13: `state_dir` must be absolute (a relative one followed the working
/// directory) and not empty.
#[test]
fn state_dir_must_be_absolute() {
    for (dir, shown) in [
        ("", "\"\""),
        ("var/lib/burstd", "\"var/lib/burstd\""),
        ("/var/lib/b\\u0000", "\"/var/lib/b\\0\""),
    ] {
        let e = err(&format!("[agent]\nstate_dir = \"{dir}\"\n"));
        assert_eq!(
            e,
            format!("/etc/burstd/burstd.toml:2:13: [agent] state_dir = {shown}: must be an absolute path with no control characters, like \"/var/lib/burstd\""),
        );
    }
}
