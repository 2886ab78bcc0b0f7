//! Lenient parsers for the cgroup control files burstd reads, split from the I/O so they are
//! tested on plain strings.
//!
//! Kernels add keys to `cpu.stat` (e.g. `nr_bursts`, `burst_usec`), so unknown keys are ignored;
//! a known key with a value that is not a number is an error. Errors are the expected form, for
//! the caller to wrap with the path and the content.

use super::Quota;

/// The fields of `cpu.stat` burstd uses. v2 reports `usage_usec` and `throttled_usec`; v1 reports
/// `throttled_time` (ns) and keeps usage in `cpuacct.usage`. Missing throttling keys (a v2 cgroup
/// without the cpu controller) read as 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuStat {
    pub usage_usec: Option<u64>,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_usec: Option<u64>,
    pub throttled_time_ns: Option<u64>,
}

/// Parse `cpu.stat` (v1 or v2): `key value` lines.
pub fn parse_cpu_stat(text: &str) -> Result<CpuStat, &'static str> {
    let mut stat = CpuStat::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        let slot = match key {
            "usage_usec" => stat.usage_usec.insert(0),
            "nr_periods" => &mut stat.nr_periods,
            "nr_throttled" => &mut stat.nr_throttled,
            "throttled_usec" => stat.throttled_usec.insert(0),
            "throttled_time" => stat.throttled_time_ns.insert(0),
            _ => continue,
        };
        *slot = value
            .parse()
            .map_err(|_| "`key value` lines with unsigned integer values")?;
    }
    Ok(stat)
}

/// Parse v2 `cpu.max`: `"max 100000"` or `"20000 100000"` (a lone quota keeps the default period).
pub fn parse_cpu_max(text: &str) -> Result<Quota, &'static str> {
    const EXPECTED: &str = "\"max PERIOD\" or \"QUOTA PERIOD\" in microseconds";
    let mut fields = text.split_whitespace();
    let quota_us = match fields.next() {
        Some("max") => None,
        Some(quota) => Some(quota.parse().map_err(|_| EXPECTED)?),
        None => return Err(EXPECTED),
    };
    let period_us = match fields.next() {
        Some(period) => period.parse().map_err(|_| EXPECTED)?,
        None => Quota::DEFAULT_PERIOD_US,
    };
    if fields.next().is_some() {
        return Err(EXPECTED);
    }
    Ok(Quota {
        quota_us,
        period_us,
    })
}

/// Parse a file holding one unsigned integer: `cpuacct.usage`, `cpu.cfs_period_us`,
/// `cpu.cfs_burst_us`, `cpu.max.burst`.
pub fn parse_u64(text: &str) -> Result<u64, &'static str> {
    text.trim().parse().map_err(|_| "one unsigned integer")
}

/// Parse v1 `cpu.cfs_quota_us`: microseconds, or `-1` for no limit.
pub fn parse_cfs_quota_us(text: &str) -> Result<Option<u64>, &'static str> {
    match text.trim() {
        "-1" => Ok(None),
        value => value
            .parse()
            .map(Some)
            .map_err(|_| "microseconds, or -1 for no limit"),
    }
}

/// Parse `cgroup.procs`: one pid per line.
pub fn parse_procs(text: &str) -> Result<Vec<u32>, &'static str> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.trim().parse().map_err(|_| "one pid per line"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_cpu_stat_with_unknown_keys() {
        let text = "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n\
                    core_sched.force_idle_usec 0\nnr_periods 31\nnr_throttled 30\n\
                    throttled_usec 2400000\nnr_bursts 0\nburst_usec 0\nsome_future_key 7\n";
        assert_eq!(
            parse_cpu_stat(text).unwrap(),
            CpuStat {
                usage_usec: Some(123456),
                nr_periods: 31,
                nr_throttled: 30,
                throttled_usec: Some(2_400_000),
                throttled_time_ns: None,
            }
        );
    }

    #[test]
    fn v1_cpu_stat_as_this_host_prints_it() {
        let text =
            "nr_periods 5\nnr_throttled 2\nthrottled_time 1500000\nnr_bursts 0\nburst_time 0\n";
        let stat = parse_cpu_stat(text).unwrap();
        assert_eq!(stat.usage_usec, None);
        assert_eq!((stat.nr_periods, stat.nr_throttled), (5, 2));
        assert_eq!(stat.throttled_time_ns, Some(1_500_000));
    }

    #[test]
    fn cpu_stat_without_cpu_controller_has_zero_throttling() {
        let stat = parse_cpu_stat("usage_usec 9\nuser_usec 5\nsystem_usec 4\n").unwrap();
        assert_eq!((stat.usage_usec, stat.nr_periods), (Some(9), 0));
    }

    #[test]
    fn cpu_stat_rejects_a_known_key_with_a_bad_value() {
        assert!(parse_cpu_stat("usage_usec lots\n").is_err());
        // Lines that are not `key value` are skipped, not fatal.
        assert!(parse_cpu_stat("\n  \nusage_usec 1\n").is_ok());
    }

    #[test]
    fn cpu_max_forms() {
        assert_eq!(
            parse_cpu_max("max 100000\n").unwrap(),
            Quota::unlimited(100_000)
        );
        assert_eq!(
            parse_cpu_max("20000 100000\n").unwrap(),
            Quota::limited(20_000, 100_000)
        );
        assert_eq!(parse_cpu_max("max").unwrap(), Quota::unlimited(100_000));
        for bad in ["", "twenty 100000", "20000 p", "1 2 3", "-1 100000"] {
            assert!(parse_cpu_max(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn v1_single_values() {
        assert_eq!(parse_u64("987654321\n").unwrap(), 987_654_321);
        assert!(parse_u64("").is_err());
        assert_eq!(parse_cfs_quota_us("-1\n").unwrap(), None);
        assert_eq!(parse_cfs_quota_us("20000\n").unwrap(), Some(20_000));
        assert!(parse_cfs_quota_us("-2\n").is_err());
    }

    #[test]
    fn procs_lines() {
        assert_eq!(parse_procs("12\n345\n").unwrap(), vec![12, 345]);
        assert_eq!(parse_procs("").unwrap(), Vec::<u32>::new());
        assert!(parse_procs("12\nx\n").is_err());
    }
}
