//! Prices for `burstd advise`: the built-in table (`config/prices.toml`, compiled in and
//! parsed) and a user's price file (TOML or CSV) that overrides it. Text in, table out: only
//! the command line reads files.

use std::collections::BTreeMap;

/// The built-in table, as data.
pub const BUILTIN_TOML: &str = include_str!("../../config/prices.toml");

/// A fixed-performance instance type: its vCPUs, all usable all the time, and its price.
#[derive(Clone, Copy, PartialEq, Debug, serde::Deserialize)]
pub struct FixedPrice {
    pub vcpus: u32,
    pub hourly_usd: f64,
}

/// On-demand hourly prices of one region.
#[derive(Clone, PartialEq, Debug)]
pub struct PriceTable {
    pub region: String,
    /// When the prices were taken (e.g. `2024-06`).
    pub date: String,
    pub source: String,
    /// Surplus credits, USD per vCPU-hour (T2/T3/T3a), as the table states it.
    pub surplus_usd_per_vcpu_hour: f64,
    pub surplus_usd_per_vcpu_hour_t4g: f64,
    /// Burstable instance types (profile names) → USD per hour.
    pub burstable: BTreeMap<String, f64>,
    pub fixed: BTreeMap<String, FixedPrice>,
    /// Files that overrode prices, in order.
    pub overridden_by: Vec<String>,
}

/// What is wrong with a price file: the file, and the line and value when known.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PriceError {
    #[error("{file}: not valid TOML: {message}")]
    Toml { file: String, message: String },
    #[error("{file}: line {line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlTable {
    region: Option<String>,
    date: Option<String>,
    source: Option<String>,
    surplus_usd_per_vcpu_hour: Option<f64>,
    surplus_usd_per_vcpu_hour_t4g: Option<f64>,
    #[serde(default)]
    burstable: BTreeMap<String, f64>,
    #[serde(default)]
    fixed: BTreeMap<String, FixedPrice>,
}

/// The built-in table.
pub fn builtin() -> Result<PriceTable, PriceError> {
    let mut table = PriceTable {
        region: String::new(),
        date: String::new(),
        source: String::new(),
        surplus_usd_per_vcpu_hour: 0.0,
        surplus_usd_per_vcpu_hour_t4g: 0.0,
        burstable: BTreeMap::new(),
        fixed: BTreeMap::new(),
        overridden_by: Vec::new(),
    };
    table.merge_toml(BUILTIN_TOML, "config/prices.toml")?;
    table.overridden_by.clear();
    Ok(table)
}

/// The line (1-based) of the first line of `text` that mentions `key`, for error messages.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.contains(key))
        .map_or(0, |i| i + 1)
}

fn price_ok(x: f64) -> bool {
    x.is_finite() && (0.0..1e6).contains(&x)
}

impl PriceTable {
    /// Overrides prices from a user file: CSV when its first line is a CSV header starting
    /// with `instance_type`, TOML otherwise.
    pub fn merge_user_file(&mut self, text: &str, file: &str) -> Result<(), PriceError> {
        let first = text
            .trim_start_matches('\u{feff}')
            .lines()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .unwrap_or("");
        if first.trim_start().starts_with("instance_type") {
            self.merge_csv(text, file)
        } else {
            self.merge_toml(text, file)
        }
    }

    /// TOML shaped like `config/prices.toml`; a bare `"type" = price` at the top level is a
    /// burstable type's (or a known fixed type's) hourly price.
    pub fn merge_toml(&mut self, text: &str, file: &str) -> Result<(), PriceError> {
        let value: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| PriceError::Toml {
                file: file.to_string(),
                message: e.to_string().trim_end().replace('\n', " "),
            })?;
        let mut structured = toml::Table::new();
        let mut bare = Vec::new();
        for (k, v) in value {
            match v {
                toml::Value::Float(_) | toml::Value::Integer(_) if k.contains('.') => {
                    bare.push((k, v))
                }
                other => {
                    structured.insert(k, other);
                }
            }
        }
        let t: TomlTable = toml::Value::Table(structured).try_into().map_err(
            |e: toml::de::Error| PriceError::File {
                file: file.to_string(),
                message: format!(
                    "{}; expected region, date, source, surplus_usd_per_vcpu_hour, \
                     [burstable] \"type\" = USD, [fixed] \"type\" = {{ vcpus = N, hourly_usd = USD }}",
                    e.message()
                ),
            },
        )?;
        let bad = |key: &str, value: String| PriceError::Line {
            file: file.to_string(),
            line: line_of(text, key),
            message: format!("{key}: price {value} is not a number of USD ≥ 0"),
        };
        for (k, v) in bare {
            let usd = v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
            match usd.filter(|&x| price_ok(x)) {
                Some(x) => self.set_price(&k, x, None, file, line_of(text, &k))?,
                None => return Err(bad(&k, v.to_string())),
            }
        }
        if let Some(s) = t.region {
            self.region = s;
        }
        if let Some(s) = t.date {
            self.date = s;
        }
        if let Some(s) = t.source {
            self.source = s;
        }
        for (key, x) in [
            ("surplus_usd_per_vcpu_hour", t.surplus_usd_per_vcpu_hour),
            (
                "surplus_usd_per_vcpu_hour_t4g",
                t.surplus_usd_per_vcpu_hour_t4g,
            ),
        ] {
            if let Some(x) = x {
                if !price_ok(x) {
                    return Err(bad(key, x.to_string()));
                }
            }
        }
        if let Some(x) = t.surplus_usd_per_vcpu_hour {
            self.surplus_usd_per_vcpu_hour = x;
        }
        if let Some(x) = t.surplus_usd_per_vcpu_hour_t4g {
            self.surplus_usd_per_vcpu_hour_t4g = x;
        }
        for (k, x) in t.burstable {
            if !price_ok(x) {
                return Err(bad(&k, x.to_string()));
            }
            self.burstable.insert(k.to_ascii_lowercase(), x);
        }
        for (k, f) in t.fixed {
            if !price_ok(f.hourly_usd) {
                return Err(bad(&k, f.hourly_usd.to_string()));
            }
            if f.vcpus == 0 || f.vcpus > 1024 {
                return Err(PriceError::Line {
                    file: file.to_string(),
                    line: line_of(text, &k),
                    message: format!("{k}: vcpus {} is not a number from 1 to 1024", f.vcpus),
                });
            }
            self.fixed.insert(k.to_ascii_lowercase(), f);
        }
        self.overridden_by.push(file.to_string());
        Ok(())
    }

    /// CSV `instance_type,hourly_usd[,vcpus]`; `vcpus` is needed only for a fixed type the
    /// built-in table does not know.
    pub fn merge_csv(&mut self, text: &str, file: &str) -> Result<(), PriceError> {
        let text = text.trim_start_matches('\u{feff}');
        let err = |line: usize, message: String| PriceError::Line {
            file: file.to_string(),
            line,
            message,
        };
        let mut rows = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let Some((hline, header)) = rows.next() else {
            return Err(PriceError::File {
                file: file.to_string(),
                message: "empty price file".to_string(),
            });
        };
        let cols: Vec<String> = header
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        let col = |name: &str| cols.iter().position(|c| c == name);
        let (Some(type_col), Some(price_col)) = (col("instance_type"), col("hourly_usd")) else {
            return Err(err(
                hline,
                format!("header {header:?}: expected `instance_type,hourly_usd[,vcpus]`"),
            ));
        };
        let vcpus_col = col("vcpus");
        let mut any = false;
        for (line, row) in rows {
            let fields: Vec<&str> = row.split(',').map(str::trim).collect();
            let get = |c: usize| fields.get(c).copied().unwrap_or("");
            let name = get(type_col);
            if name.is_empty() {
                return Err(err(line, "no instance_type".to_string()));
            }
            let price_text = get(price_col);
            let price = price_text
                .parse::<f64>()
                .ok()
                .filter(|&x| price_ok(x))
                .ok_or_else(|| {
                    err(
                        line,
                        format!("{name}: hourly_usd {price_text:?} is not a number of USD ≥ 0"),
                    )
                })?;
            let vcpus = match vcpus_col.map(get).filter(|v| !v.is_empty()) {
                None => None,
                Some(v) => Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| (1..=1024).contains(n))
                        .ok_or_else(|| {
                            err(
                                line,
                                format!("{name}: vcpus {v:?} is not a number from 1 to 1024"),
                            )
                        })?,
                ),
            };
            self.set_price(name, price, vcpus, file, line)?;
            any = true;
        }
        if !any {
            return Err(err(hline, "a header but no prices".to_string()));
        }
        self.overridden_by.push(file.to_string());
        Ok(())
    }

    /// One price from a user file: a burstable profile's, or a fixed type's (new ones need
    /// their vCPUs).
    fn set_price(
        &mut self,
        name: &str,
        usd: f64,
        vcpus: Option<u32>,
        file: &str,
        line: usize,
    ) -> Result<(), PriceError> {
        let key = name.trim().to_ascii_lowercase();
        if crate::credit::builtin_profile(&key).is_some() && vcpus.is_none() {
            self.burstable.insert(key, usd);
        } else if let Some(f) = self.fixed.get_mut(&key) {
            f.hourly_usd = usd;
            if let Some(v) = vcpus {
                f.vcpus = v;
            }
        } else if let Some(v) = vcpus {
            self.fixed.insert(
                key,
                FixedPrice {
                    vcpus: v,
                    hourly_usd: usd,
                },
            );
        } else {
            return Err(PriceError::Line {
                file: file.to_string(),
                line,
                message: format!(
                    "{name}: neither a burstable profile (`burstd profiles`) nor a fixed type \
                     of the built-in table; give its vCPUs (CSV column `vcpus`, or TOML \
                     [fixed] \"{name}\" = {{ vcpus = N, hourly_usd = {usd} }})"
                ),
            });
        }
        Ok(())
    }

    /// A burstable type's hourly price (profile names in any case).
    pub fn burstable_hourly(&self, name: &str) -> Option<f64> {
        self.burstable.get(&name.to_ascii_lowercase()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credit::profile::{PRICE_LINUX_NANO, PRICE_T4G_NANO};

    #[test]
    fn builtin_table_parses_and_agrees_with_the_model() {
        let t = builtin().unwrap();
        assert_eq!(
            (t.region.as_str(), t.date.as_str()),
            ("us-east-1", "2024-06")
        );
        assert_eq!(t.burstable_hourly("t3.micro"), Some(0.0104));
        assert_eq!(t.burstable_hourly("T2.MICRO"), Some(0.0116));
        assert_eq!(
            t.fixed["m5.large"],
            FixedPrice {
                vcpus: 2,
                hourly_usd: 0.096
            }
        );
        assert_eq!(
            (t.surplus_usd_per_vcpu_hour * 1e9).round() as u64,
            PRICE_LINUX_NANO
        );
        assert_eq!(
            (t.surplus_usd_per_vcpu_hour_t4g * 1e9).round() as u64,
            PRICE_T4G_NANO
        );
        // Every EC2 burstable profile has a price.
        for p in crate::credit::builtin_profiles() {
            if p.unlimited_allowed {
                assert!(t.burstable_hourly(&p.name).is_some(), "{}", p.name);
            }
        }
    }

    #[test]
    fn user_files_override_and_errors_name_file_line_value() {
        let mut t = builtin().unwrap();
        t.merge_user_file(
            "# mine\ninstance_type,hourly_usd,vcpus\nt3.micro,0.02,\nm5.large,0.1\nx1.big,1.5,16\n",
            "p.csv",
        )
        .unwrap();
        assert_eq!(t.burstable_hourly("t3.micro"), Some(0.02));
        assert_eq!(t.fixed["m5.large"].hourly_usd, 0.1);
        assert_eq!(t.fixed["x1.big"].vcpus, 16);
        t.merge_user_file(
            "region = \"eu-west-1\"\n\"t3.nano\" = 0.006\n[fixed]\n\"c5.large\" = { vcpus = 2, hourly_usd = 0.096 }\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(t.region, "eu-west-1");
        assert_eq!(t.burstable_hourly("t3.nano"), Some(0.006));
        assert_eq!(t.fixed["c5.large"].hourly_usd, 0.096);
        assert_eq!(t.overridden_by, ["p.csv", "p.toml"]);

        let cases = [
            (
                "instance_type,hourly_usd\nt3.micro,abc\n",
                "p: line 2: t3.micro: hourly_usd \"abc\"",
            ),
            (
                "instance_type,hourly_usd\nt3.micro,-1\n",
                "p: line 2: t3.micro: hourly_usd \"-1\"",
            ),
            (
                "instance_type,hourly_usd\nz9.huge,1\n",
                "p: line 2: z9.huge: neither",
            ),
            ("instance_type,price\n", "p: line 1: header"),
            (
                "instance_type,hourly_usd\n",
                "p: line 1: a header but no prices",
            ),
            ("\"t3.micro\" = -2\n", "p: line 1: t3.micro: price -2"),
            (
                "[burstable]\n\"t3.micro\" = -2.5\n",
                "p: line 2: t3.micro: price -2.5",
            ),
            (
                "[fixed]\n\"m5.large\" = { vcpus = 0, hourly_usd = 1 }\n",
                "p: line 2: m5.large: vcpus 0",
            ),
            ("regoin = \"x\"\n", "p: unknown field `regoin`"),
            ("[burstable\n", "p: not valid TOML"),
        ];
        for (text, want) in cases {
            let msg = builtin()
                .unwrap()
                .merge_user_file(text, "p")
                .unwrap_err()
                .to_string();
            assert!(msg.starts_with(want), "{text:?}: {msg}");
        }
    }
}
