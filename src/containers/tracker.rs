//! The pure state machine between the runtime and the agent: it takes the list, the events and
//! the answers to inspections, in whatever order they come, and says which containers to
//! manage and which to let go. No sockets, files or clocks: the watcher feeds it.
//!
//! The protocol: subscribe to `/events` first, then list, so nothing that happens after the
//! list is missed. Events that arrive while the list is in flight are fresher than (or as
//! fresh as) the list for their containers, so the list is not applied to them. When the
//! stream breaks, events may have been lost: reconnect with back-off and resync by listing
//! again (containers gone meanwhile are let go, new ones are inspected).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::docker::{Details, Event, EventKind, Summary};
use super::labels::{self, LabelError, LabelSpec};
use crate::credit::{Profile, Rate};

/// First reconnection delay; it doubles with each failure up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_millis(250);
/// A runtime started after burstd is found within this long.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A container burstd manages.
#[derive(Clone, PartialEq, Debug)]
pub struct Managed {
    pub id: String,
    /// The container's name (the `container` label of its metrics).
    pub name: String,
    pub spec: LabelSpec,
    /// Its cgroup, relative to the hierarchy root, found from `pid`.
    pub cgroup: String,
    pub pid: u32,
    /// Its own CPU limit: burstd's ceiling never goes above it.
    pub cpu_limit: Option<Rate>,
}

/// What the answer to an inspection was, with the cgroup found from its process.
#[derive(Clone, PartialEq, Debug)]
pub struct Inspected {
    pub details: Details,
    /// `None` when it is not running; an error says why its cgroup is unusable.
    pub cgroup: Option<Result<String, String>>,
}

/// What the tracker asks for.
#[derive(Clone, PartialEq, Debug)]
pub enum Action {
    /// List the labelled running containers and hand the answer to [`Tracker::listed`].
    List,
    /// Inspect this container and hand the answer to [`Tracker::inspected`].
    Inspect(String),
    /// Manage it now (a start of its instance); replaces an earlier `Manage` of the same id.
    Manage(Managed),
    /// It stopped or went: a stop of its instance.
    Unmanage { id: String, instance_id: String },
    /// Its own CPU limit changed (`docker update --cpus`).
    Limit {
        instance_id: String,
        cpu_limit: Option<Rate>,
    },
    /// Its labels are refused; reported once per container.
    LabelError(LabelError),
    /// It asks to be managed but cannot be; reported once per container.
    Unusable {
        id: String,
        name: String,
        reason: String,
    },
    /// Everything the list showed has been reported (after the `Manage`s its inspections
    /// lead to, when those go first): restored instances not reported are stopped.
    Synced,
    /// The connection failed: try again after this long.
    Reconnect { after: Duration },
}

#[derive(Default)]
pub struct Tracker {
    custom: BTreeMap<String, Profile>,
    managed: BTreeMap<String, Managed>,
    /// Inspections asked for and not answered, per container; only the answer to the last
    /// one is applied (an earlier one may predate an event).
    inspecting: BTreeMap<String, u32>,
    /// While a list is in flight: the containers events spoke of meanwhile.
    listing: Option<BTreeSet<String>>,
    /// Containers whose refusal was reported (until they are removed).
    reported: BTreeSet<String>,
    failures: u32,
}

impl Tracker {
    /// `custom`: the config-defined profiles a `burstd.profile` label may name.
    pub fn new(custom: BTreeMap<String, Profile>) -> Tracker {
        Tracker {
            custom,
            ..Tracker::default()
        }
    }

    pub fn managed(&self) -> impl Iterator<Item = &Managed> {
        self.managed.values()
    }

    /// Consecutive connection failures (0 while connected).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The event stream is open: list what runs now.
    pub fn connected(&mut self) -> Vec<Action> {
        self.listing = Some(BTreeSet::new());
        self.inspecting.clear();
        vec![Action::List]
    }

    /// The list arrived: inspect every labelled container (a restart while events were lost
    /// keeps the id but changes the process), let go the managed ones that are not running.
    pub fn listed(&mut self, list: Vec<Summary>) -> Vec<Action> {
        self.failures = 0;
        let fresher = self.listing.take().unwrap_or_default();
        let running: BTreeSet<&str> = list.iter().map(|s| s.id.as_str()).collect();
        let mut actions = Vec::new();
        let gone: Vec<String> = self
            .managed
            .keys()
            .filter(|id| !running.contains(id.as_str()) && !fresher.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            actions.extend(self.let_go(&id));
        }
        for s in &list {
            if fresher.contains(&s.id) || !labels::opted_in(&s.labels) {
                continue;
            }
            if let Some(a) = self.ask(&s.id, false) {
                actions.push(a);
            }
        }
        actions.push(Action::Synced);
        actions
    }

    /// An event from the stream.
    pub fn event(&mut self, ev: Event) -> Vec<Action> {
        if let Some(seen) = &mut self.listing {
            seen.insert(ev.id.clone());
        }
        match ev.kind {
            EventKind::Start | EventKind::Updated => {
                let known = self.managed.contains_key(&ev.id);
                if !(ev.opted_in || known) {
                    return Vec::new();
                }
                if ev.kind == EventKind::Updated && !known {
                    return Vec::new();
                }
                self.ask(&ev.id, false).into_iter().collect()
            }
            EventKind::Died => {
                // Asked, not believed: Podman's `cleanup` of a run can come after the start of
                // the next (`podman restart`), so the runtime is asked what runs now. An
                // inspection in flight may predate the death: asked again.
                if self.managed.contains_key(&ev.id) || self.inspecting.contains_key(&ev.id) {
                    self.ask(&ev.id, true).into_iter().collect()
                } else {
                    Vec::new()
                }
            }
            EventKind::Removed => {
                // An inspection in flight now answers for a container that is gone.
                self.inspecting.remove(&ev.id);
                self.reported.remove(&ev.id);
                self.let_go(&ev.id)
            }
        }
    }

    /// The answer to [`Action::Inspect`]: `Err` when the runtime could not answer (a container
    /// removed meanwhile answers 404).
    pub fn inspected(&mut self, id: &str, answer: Result<Inspected, String>) -> Vec<Action> {
        match self.inspecting.get_mut(id) {
            None => return Vec::new(),
            Some(n) if *n > 1 => {
                // A later inspection is on its way: this answer may be stale.
                *n -= 1;
                return Vec::new();
            }
            Some(_) => {
                self.inspecting.remove(id);
            }
        }
        let Ok(Inspected { details, cgroup }) = answer else {
            return self.let_go(id);
        };
        let cgroup = match cgroup {
            Some(c) if details.running && details.pid != 0 => c,
            _ => return self.let_go(id),
        };
        let spec = match labels::parse(&details.name, &details.labels, &self.custom) {
            Ok(Some(spec)) => spec,
            Ok(None) => return self.let_go(id),
            Err(e) => return self.refuse(id, Action::LabelError(e)),
        };
        if let Some(other) = self
            .managed
            .values()
            .find(|m| m.id != id && m.spec.instance_id == spec.instance_id)
        {
            let (label, value) = match details.labels.get(labels::INSTANCE_ID) {
                Some(v) => (labels::INSTANCE_ID, v.clone()),
                None => ("name", details.name.clone()),
            };
            let e = LabelError {
                container: details.name.clone(),
                label: label.to_string(),
                value,
                allowed: format!(
                    "instance id {} is already used by running container {}; give each a distinct {}",
                    spec.instance_id,
                    other.name,
                    labels::INSTANCE_ID
                ),
            };
            return self.refuse(id, Action::LabelError(e));
        }
        let cgroup = match cgroup {
            Ok(c) => c,
            Err(reason) => {
                let a = Action::Unusable {
                    id: id.to_string(),
                    name: details.name.clone(),
                    reason,
                };
                return self.refuse(id, a);
            }
        };
        let m = Managed {
            id: id.to_string(),
            name: details.name,
            spec,
            cgroup,
            pid: details.pid,
            cpu_limit: details.cpu_limit,
        };
        match self.managed.get_mut(id) {
            Some(old) if old.pid == m.pid && old.cgroup == m.cgroup && old.spec == m.spec => {
                if old.cpu_limit == m.cpu_limit {
                    return Vec::new();
                }
                old.cpu_limit = m.cpu_limit;
                vec![Action::Limit {
                    instance_id: m.spec.instance_id,
                    cpu_limit: m.cpu_limit,
                }]
            }
            _ => {
                self.reported.remove(id);
                self.managed.insert(id.to_string(), m.clone());
                vec![Action::Manage(m)]
            }
        }
    }

    /// The stream or the list failed: events may be lost from here on.
    pub fn disconnected(&mut self) -> Vec<Action> {
        self.listing = None;
        self.inspecting.clear();
        self.failures = self.failures.saturating_add(1);
        vec![Action::Reconnect {
            after: backoff(self.failures),
        }]
    }

    /// Asks for an inspection of `id`; `again`: even if one is in flight.
    fn ask(&mut self, id: &str, again: bool) -> Option<Action> {
        match self.inspecting.get_mut(id) {
            Some(n) if again => *n += 1,
            Some(_) => return None,
            None => {
                self.inspecting.insert(id.to_string(), 1);
            }
        }
        Some(Action::Inspect(id.to_string()))
    }

    fn let_go(&mut self, id: &str) -> Vec<Action> {
        match self.managed.remove(id) {
            Some(m) => vec![Action::Unmanage {
                id: m.id,
                instance_id: m.spec.instance_id,
            }],
            None => Vec::new(),
        }
    }

    /// Leaves a container alone, reporting why once. A managed one stops being managed.
    fn refuse(&mut self, id: &str, report: Action) -> Vec<Action> {
        let mut actions = self.let_go(id);
        if self.reported.insert(id.to_string()) {
            actions.push(report);
        }
        actions
    }
}

/// The delay before reconnection attempt `failures` (1 = the first).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaa";
    const B: &str = "bbbb";

    fn lab(profile: Option<&str>) -> BTreeMap<String, String> {
        profile
            .map(|p| [(labels::PROFILE.to_string(), p.to_string())].into())
            .unwrap_or_default()
    }

    fn summary(id: &str, profile: Option<&str>) -> Summary {
        Summary {
            id: id.into(),
            name: format!("c-{id}"),
            labels: lab(profile),
        }
    }

    fn ev(kind: EventKind, id: &str, opted_in: bool) -> Event {
        Event {
            kind,
            id: id.into(),
            name: format!("c-{id}"),
            opted_in,
        }
    }

    fn running(id: &str, pid: u32, labels: BTreeMap<String, String>) -> Result<Inspected, String> {
        Ok(Inspected {
            details: Details {
                id: id.into(),
                name: format!("c-{id}"),
                running: true,
                pid,
                labels,
                cpu_limit: None,
            },
            cgroup: Some(Ok(format!("libpod_parent/libpod-{id}"))),
        })
    }

    fn exited(id: &str) -> Result<Inspected, String> {
        let mut answer = t3(id, 0)?;
        answer.details.running = false;
        answer.cgroup = None;
        Ok(answer)
    }

    fn t3(id: &str, pid: u32) -> Result<Inspected, String> {
        running(id, pid, lab(Some("t3.micro")))
    }

    fn managed_ids(t: &Tracker) -> Vec<(String, u32)> {
        t.managed().map(|m| (m.id.clone(), m.pid)).collect()
    }

    fn is_manage(a: &[Action], id: &str) -> bool {
        matches!(a, [Action::Manage(m)] if m.id == id && m.spec.instance_id == format!("c-{id}"))
    }

    fn unmanage(id: &str) -> Action {
        Action::Unmanage {
            id: id.into(),
            instance_id: format!("c-{id}"),
        }
    }

    /// A tracker that has listed and manages `A` (pid 10).
    fn with_a() -> Tracker {
        let mut t = Tracker::default();
        t.connected();
        assert_eq!(
            t.listed(vec![summary(A, Some("t3.micro"))]),
            vec![Action::Inspect(A.into()), Action::Synced]
        );
        assert!(is_manage(&t.inspected(A, t3(A, 10)), A));
        t
    }

    #[test]
    fn list_then_inspect_manages_labelled_containers_only() {
        let mut t = Tracker::default();
        assert_eq!(t.connected(), vec![Action::List]);
        // The list filter asks for labelled ones; an unlabelled answer is ignored anyway.
        let a = t.listed(vec![summary(A, Some("t3.micro")), summary(B, None)]);
        assert_eq!(a, vec![Action::Inspect(A.into()), Action::Synced]);
        let a = t.inspected(A, t3(A, 10));
        assert!(is_manage(&a, A), "{a:?}");
        let Action::Manage(m) = &a[0] else {
            unreachable!()
        };
        assert_eq!(m.cgroup, "libpod_parent/libpod-aaaa");
        assert_eq!(m.spec.profile.name, "t3.micro");
    }

    #[test]
    fn unlabelled_start_is_never_inspected() {
        let mut t = with_a();
        assert!(t.event(ev(EventKind::Start, B, false)).is_empty());
        assert!(t.event(ev(EventKind::Died, B, false)).is_empty());
        assert_eq!(managed_ids(&t), vec![(A.into(), 10)]);
    }

    #[test]
    fn start_before_the_list_answers() {
        let mut t = Tracker::default();
        t.connected();
        // B starts while the list is in flight; the list (taken before or after) is not
        // applied to B, so B is inspected once, from its event.
        assert_eq!(
            t.event(ev(EventKind::Start, B, true)),
            vec![Action::Inspect(B.into())]
        );
        assert!(is_manage(&t.inspected(B, t3(B, 20)), B));
        let a = t.listed(vec![
            summary(A, Some("t3.micro")),
            summary(B, Some("t3.micro")),
        ]);
        assert_eq!(a, vec![Action::Inspect(A.into()), Action::Synced]);
        // B started after the list was taken: the list lacks it, and B stays managed.
        let mut t = Tracker::default();
        t.connected();
        t.event(ev(EventKind::Start, B, true));
        assert!(is_manage(&t.inspected(B, t3(B, 20)), B));
        assert_eq!(t.listed(vec![]), vec![Action::Synced]);
        assert_eq!(managed_ids(&t), vec![(B.into(), 20)]);
    }

    #[test]
    fn die_while_the_list_is_in_flight_wins_over_the_list() {
        let mut t = with_a();
        t.disconnected();
        t.connected();
        // A dies after the list was taken: the list still has it, the event is fresher.
        assert_eq!(
            t.event(ev(EventKind::Died, A, true)),
            vec![Action::Inspect(A.into())]
        );
        assert_eq!(t.inspected(A, exited(A)), vec![unmanage(A)]);
        assert_eq!(
            t.listed(vec![summary(A, Some("t3.micro"))]),
            vec![Action::Synced]
        );
        assert!(managed_ids(&t).is_empty());
    }

    #[test]
    fn die_without_start_is_ignored() {
        let mut t = Tracker::default();
        t.connected();
        t.listed(vec![]);
        assert!(t.event(ev(EventKind::Died, A, true)).is_empty());
        assert!(t.event(ev(EventKind::Removed, A, true)).is_empty());
        assert!(managed_ids(&t).is_empty());
    }

    #[test]
    fn die_then_remove_lets_go_once() {
        let mut t = with_a();
        assert_eq!(
            t.event(ev(EventKind::Died, A, true)),
            vec![Action::Inspect(A.into())]
        );
        assert_eq!(t.inspected(A, exited(A)), vec![unmanage(A)]);
        // Podman sends cleanup twice, then remove.
        assert!(t.event(ev(EventKind::Died, A, true)).is_empty());
        assert!(t.event(ev(EventKind::Removed, A, true)).is_empty());
    }

    #[test]
    fn die_during_inspection_drops_the_stale_answer() {
        let mut t = Tracker::default();
        t.connected();
        t.listed(vec![]);
        assert_eq!(
            t.event(ev(EventKind::Start, A, true)),
            vec![Action::Inspect(A.into())]
        );
        // Asked again: the answer in flight may predate the death.
        assert_eq!(
            t.event(ev(EventKind::Died, A, true)),
            vec![Action::Inspect(A.into())]
        );
        // The first answer, taken before the death, is not applied; the second is.
        assert!(t.inspected(A, t3(A, 10)).is_empty());
        assert!(t.inspected(A, exited(A)).is_empty());
        assert!(managed_ids(&t).is_empty());
    }

    #[test]
    fn restart_is_a_stop_then_a_start_in_a_new_process() {
        let mut t = with_a();
        t.event(ev(EventKind::Died, A, true));
        assert_eq!(t.inspected(A, exited(A)), vec![unmanage(A)]);
        t.event(ev(EventKind::Start, A, true));
        let a = t.inspected(A, t3(A, 11));
        assert!(is_manage(&a, A), "{a:?}");
        assert_eq!(managed_ids(&t), vec![(A.into(), 11)]);
    }

    #[test]
    fn a_late_death_of_the_previous_run_does_not_stop_the_new_one() {
        // podman restart: the inspection after `die` already sees the new process, and the
        // previous run's `cleanup` arrives after the new start.
        let mut t = with_a();
        t.event(ev(EventKind::Died, A, true));
        assert!(is_manage(&t.inspected(A, t3(A, 11)), A));
        t.event(ev(EventKind::Start, A, true));
        assert!(t.inspected(A, t3(A, 11)).is_empty());
        assert_eq!(
            t.event(ev(EventKind::Died, A, true)),
            vec![Action::Inspect(A.into())]
        );
        assert!(t.inspected(A, t3(A, 11)).is_empty());
        assert_eq!(managed_ids(&t), vec![(A.into(), 11)]);
    }

    #[test]
    fn lost_events_are_resynced_by_listing() {
        let mut t = with_a();
        // The stream breaks; meanwhile A is removed and B started.
        assert_eq!(
            t.disconnected(),
            vec![Action::Reconnect {
                after: BACKOFF_FIRST
            }]
        );
        // Until the resync, A is still believed running (its cgroup tells the agent).
        assert_eq!(managed_ids(&t), vec![(A.into(), 10)]);
        t.connected();
        let a = t.listed(vec![summary(B, Some("t3.micro"))]);
        assert_eq!(
            a,
            vec![unmanage(A), Action::Inspect(B.into()), Action::Synced]
        );
        assert!(is_manage(&t.inspected(B, t3(B, 20)), B));
        assert_eq!(managed_ids(&t), vec![(B.into(), 20)]);
    }

    #[test]
    fn restart_while_events_were_lost_is_found_by_the_resync() {
        let mut t = with_a();
        t.disconnected();
        t.connected();
        assert_eq!(
            t.listed(vec![summary(A, Some("t3.micro"))]),
            vec![Action::Inspect(A.into()), Action::Synced]
        );
        // Same id, new process: managed anew.
        assert!(is_manage(&t.inspected(A, t3(A, 11)), A));
        // Unchanged on the next resync: nothing to do.
        t.disconnected();
        t.connected();
        t.listed(vec![summary(A, Some("t3.micro"))]);
        assert!(t.inspected(A, t3(A, 11)).is_empty());
    }

    #[test]
    fn recreated_with_the_same_name_keeps_the_instance() {
        // compose up --force-recreate: old A removed, new B with A's name.
        let mut t = with_a();
        assert_eq!(t.event(ev(EventKind::Removed, A, true)), vec![unmanage(A)]);
        t.event(ev(EventKind::Start, B, true));
        let mut answer = t3(B, 30).unwrap();
        answer.details.name = "c-aaaa".into();
        let a = t.inspected(B, Ok(answer));
        let [Action::Manage(m)] = a.as_slice() else {
            panic!("{a:?}")
        };
        assert_eq!((m.id.as_str(), m.spec.instance_id.as_str()), (B, "c-aaaa"));
    }

    #[test]
    fn two_running_containers_cannot_share_an_instance_id() {
        let mut t = with_a();
        let mut l = lab(Some("t3.micro"));
        l.insert(labels::INSTANCE_ID.into(), "c-aaaa".into());
        t.event(ev(EventKind::Start, B, true));
        let a = t.inspected(B, running(B, 20, l.clone()));
        let [Action::LabelError(e)] = a.as_slice() else {
            panic!("{a:?}")
        };
        assert_eq!(
            (e.container.as_str(), e.label.as_str(), e.value.as_str()),
            ("c-bbbb", labels::INSTANCE_ID, "c-aaaa")
        );
        assert!(
            e.allowed.contains("running container c-aaaa"),
            "{}",
            e.allowed
        );
        assert_eq!(managed_ids(&t), vec![(A.into(), 10)]);
    }

    #[test]
    fn label_error_is_reported_once_per_container() {
        let mut t = Tracker::default();
        t.connected();
        t.listed(vec![summary(A, Some("t9.huge"))]);
        let a = t.inspected(A, running(A, 10, lab(Some("t9.huge"))));
        let [Action::LabelError(e)] = a.as_slice() else {
            panic!("{a:?}")
        };
        assert_eq!(
            (e.label.as_str(), e.value.as_str()),
            (labels::PROFILE, "t9.huge")
        );
        // A resync or a restart sees it again: not reported again, never managed.
        t.disconnected();
        t.connected();
        t.listed(vec![summary(A, Some("t9.huge"))]);
        assert!(t
            .inspected(A, running(A, 10, lab(Some("t9.huge"))))
            .is_empty());
        assert!(managed_ids(&t).is_empty());
        // Removed, then a new container with the same id (not in practice, but the record
        // must not grow without bound): reported again.
        t.event(ev(EventKind::Removed, A, true));
        t.event(ev(EventKind::Start, A, true));
        assert_eq!(
            t.inspected(A, running(A, 12, lab(Some("t9.huge")))).len(),
            1
        );
    }

    #[test]
    fn a_container_without_a_usable_cgroup_is_reported_and_left_alone() {
        let mut t = Tracker::default();
        t.connected();
        t.listed(vec![summary(A, Some("t3.micro"))]);
        let mut answer = t3(A, 10).unwrap();
        answer.cgroup = Some(Err("the process is in the root cgroup".into()));
        let a = t.inspected(A, Ok(answer));
        assert!(
            matches!(a.as_slice(), [Action::Unusable { id, reason, .. }] if id == A && reason.contains("root cgroup")),
            "{a:?}"
        );
        assert!(managed_ids(&t).is_empty());
    }

    #[test]
    fn stopped_or_vanished_at_inspection_is_not_managed() {
        let mut t = Tracker::default();
        t.connected();
        t.listed(vec![
            summary(A, Some("t3.micro")),
            summary(B, Some("t3.micro")),
        ]);
        let mut stopped = t3(A, 0).unwrap();
        stopped.details.running = false;
        stopped.cgroup = None;
        assert!(t.inspected(A, Ok(stopped)).is_empty());
        assert!(t
            .inspected(B, Err("HTTP 404: no such container".into()))
            .is_empty());
        assert!(managed_ids(&t).is_empty());
    }

    #[test]
    fn update_changes_only_the_limit() {
        let mut t = with_a();
        assert_eq!(
            t.event(ev(EventKind::Updated, A, true)),
            vec![Action::Inspect(A.into())]
        );
        let mut answer = t3(A, 10).unwrap();
        answer.details.cpu_limit = Some(Rate::from_milli_credits_per_hour(30_000));
        assert_eq!(
            t.inspected(A, Ok(answer)),
            vec![Action::Limit {
                instance_id: "c-aaaa".into(),
                cpu_limit: Some(Rate::from_milli_credits_per_hour(30_000))
            }]
        );
        // An update of a container that is not ours is not inspected.
        assert!(t.event(ev(EventKind::Updated, B, true)).is_empty());
    }

    #[test]
    fn back_off_doubles_to_its_bound_and_resets_on_a_list() {
        let mut t = Tracker::default();
        let delays: Vec<u128> = (0..8)
            .map(|_| match t.disconnected().as_slice() {
                [Action::Reconnect { after }] => after.as_millis(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            delays,
            vec![250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]
        );
        assert_eq!(t.failures(), 8);
        t.connected();
        t.listed(vec![]);
        assert_eq!(t.failures(), 0);
        assert_eq!(
            t.disconnected(),
            vec![Action::Reconnect {
                after: BACKOFF_FIRST
            }]
        );
    }

    #[test]
    fn repeated_start_events_inspect_once() {
        let mut t = Tracker::default();
        t.connected();
        t.listed(vec![]);
        assert_eq!(t.event(ev(EventKind::Start, A, true)).len(), 1);
        assert!(t.event(ev(EventKind::Start, A, true)).is_empty());
    }
}
