//! Discovery: how a workload spec becomes cgroups. The one place that knows each
//! [`Source`]; the agent's rescan and `burstd check` both ask it, so they cannot disagree.
//!
//! A source is one arm of [`Discoverer::lookup`] and, when it needs to ask something outside
//! the cgroup tree (systemd today), one resolver file beside this one (`systemd.rs`). Adding
//! a source is then three files: its [`Source`] variant in `config/workloads.rs`, its resolver
//! here, and its arm below.

pub mod systemd;

use crate::cgroup::{CgroupError, Hierarchy};
use crate::config::{Source, WorkloadSpec};
pub use systemd::{SystemdUnits, UnitResolver};

/// One cgroup a spec resolved to, and the workload name it runs under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    /// Relative to the cgroup root.
    pub cgroup: String,
}

/// What the source of a spec says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// These cgroups (none: nothing matches now).
    Cgroups(Vec<Found>),
    /// The source knows the workload and says it is not running (systemd: the unit has no
    /// cgroup). A workload running until now gets a look soon, which notices the stop.
    NotRunning,
}

/// Why a source could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot list cgroups matching {pattern:?}: {source}")]
    Glob {
        pattern: String,
        source: CgroupError,
    },
}

/// The resolvers of the sources that ask outside the cgroup tree.
pub struct Discoverer {
    units: Box<dyn UnitResolver>,
}

impl Discoverer {
    /// The resolvers of a real host: systemd is asked through `systemctl`.
    pub fn system() -> Discoverer {
        Discoverer {
            units: Box::new(SystemdUnits),
        }
    }

    /// Another unit resolver (tests, hosts without systemd).
    pub fn with_units(units: Box<dyn UnitResolver>) -> Discoverer {
        Discoverer { units }
    }

    /// The cgroups `spec` stands for now, looked up in `hierarchy` or asked of its resolver.
    pub fn lookup(
        &mut self,
        spec: &WorkloadSpec,
        hierarchy: &dyn Hierarchy,
    ) -> Result<Lookup, DiscoverError> {
        let one = |cgroup: String| {
            Lookup::Cgroups(vec![Found {
                name: spec.name.clone(),
                cgroup,
            }])
        };
        Ok(match &spec.source {
            Source::Cgroup(p) => one(p.clone()),
            // Where the runtime last reported it (the container source keeps this current).
            Source::Container(c) => match &c.cgroup {
                Some(p) => one(p.clone()),
                None => Lookup::NotRunning,
            },
            Source::Unit(u) => match self.units.cgroup_of(u) {
                Some(p) => one(p),
                None => Lookup::NotRunning,
            },
            Source::Match(pattern) => {
                let paths = hierarchy
                    .glob(pattern)
                    .map_err(|source| DiscoverError::Glob {
                        pattern: pattern.clone(),
                        source,
                    })?;
                Lookup::Cgroups(
                    paths
                        .into_iter()
                        .map(|p| {
                            let last = p.rsplit('/').next().unwrap_or(&p).to_string();
                            Found {
                                name: format!("{}/{last}", spec.name),
                                cgroup: p,
                            }
                        })
                        .collect(),
                )
            }
        })
    }
}

/// Whether the workload called `name` comes from `spec`: its own name, or for a spec whose
/// source finds many cgroups, `<spec name>/<cgroup>`.
pub fn spec_owns(spec: &WorkloadSpec, name: &str) -> bool {
    match &spec.source {
        Source::Match(_) => name
            .strip_prefix(&spec.name)
            .is_some_and(|r| r.starts_with('/')),
        _ => spec.name == name,
    }
}

/// The spec workload `name` comes from, if it is still configured.
pub fn spec_for<'a>(specs: &'a [WorkloadSpec], name: &str) -> Option<&'a WorkloadSpec> {
    specs.iter().find(|s| spec_owns(s, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    const SPECS: &str = "[[workload]]\nname = \"db\"\nunit = \"postgresql.service\"\n[[workload]]\nname = \"gone\"\nunit = \"gone.service\"\n[[workload]]\nname = \"pods\"\nmatch = \"pods/*\"\n[[workload]]\nname = \"web\"\ncgroup = \"/web\"\n";

    struct OneUnit;
    impl UnitResolver for OneUnit {
        fn cgroup_of(&mut self, unit: &str) -> Option<String> {
            (unit == "postgresql.service").then(|| "system.slice/postgresql.service".into())
        }
    }

    #[test]
    fn each_source_resolves_and_names_its_workloads() {
        let dir = tempfile::tempdir().unwrap();
        let c = testkit::cfg(SPECS, dir.path());
        let fake = testkit::fake();
        fake.add("pods/a", 0);
        fake.add("pods/b", 0);
        let mut d = Discoverer::with_units(Box::new(OneUnit));
        let found = |name: &str, cgroup: &str| Found {
            name: name.into(),
            cgroup: cgroup.into(),
        };
        let w = &c.workloads;
        assert_eq!(
            d.lookup(&w[0], &fake).unwrap(),
            Lookup::Cgroups(vec![found("db", "system.slice/postgresql.service")])
        );
        assert_eq!(d.lookup(&w[1], &fake).unwrap(), Lookup::NotRunning);
        assert_eq!(
            d.lookup(&w[2], &fake).unwrap(),
            Lookup::Cgroups(vec![found("pods/a", "pods/a"), found("pods/b", "pods/b")])
        );
        assert_eq!(
            d.lookup(&w[3], &fake).unwrap(),
            Lookup::Cgroups(vec![found("web", "web")])
        );
        // The way back, name → spec: a match's workloads are its name and one more element.
        assert_eq!(spec_for(w, "pods/a").map(|s| &s.name[..]), Some("pods"));
        assert_eq!(spec_for(w, "web").map(|s| &s.name[..]), Some("web"));
        assert!(spec_for(w, "pods").is_none());
        assert!(spec_for(w, "podsx/a").is_none());
    }
}
