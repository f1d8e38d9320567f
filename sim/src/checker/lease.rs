//! The lease checker: a manager keeps its lease for as long as nothing disturbs it.
//!
//! Safety does not need it: a manager that loses its lease for nothing steps down, a successor
//! (or itself) takes the job over, and the output stays exactly once. What is lost is
//! availability: every change of leader costs a recovery of the whole job. So the lease's own
//! promise is judged apart, as Chubby and ZooKeeper promise a session: a holder that keeps
//! renewing, over a store that answers, keeps it.
//!
//! - `lease-lost-undisturbed`: a manager loses its lease (`LeaseLost`) only while a fault
//!   touches it or the store (the node itself, or a link from or to either), or within a lease
//!   period and a request timeout of that fault's end: a renewal that found the store silent,
//!   a pause past the lease's term, a successor that took a lease left unrenewed. The holder
//!   learns it by a request of its own, which may wait a request timeout for its answer (a
//!   manager paused mid-takeover learnt it 520 ms after it resumed, its lease being 500 ms).
//!   Read from the trace's `LeaseLost` and the injector's record of the faults, never from
//!   the manager's reasons.

use faultline_reports::Violation;

use super::push_examples as push;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 1] = ["lease-lost-undisturbed"];

/// A fault as this checker reads it: when it struck, when it ended, and the nodes it touched.
#[derive(Clone, Debug)]
pub struct Touch {
    pub from_ms: u64,
    pub to_ms: u64,
    pub nodes: Vec<String>,
}

/// What the checker reads of a run.
pub struct Observed<'a> {
    /// `(ms, manager)`: each lease lost, in time order.
    pub lost: &'a [(u64, String)],
    pub faults: &'a [Touch],
    /// The store node's name: a fault on it, or on a link to it, disturbs every lease.
    pub store: &'a str,
    pub lease_ms: u64,
    pub request_timeout_ms: u64,
}

/// Checks that every lease lost follows a fault that could have cost it.
pub fn check(o: &Observed<'_>) -> Vec<Violation> {
    assert!(o.lease_ms > 0, "a lease of no time");
    assert!(o.lost.is_sorted_by_key(|l| l.0), "leases lost in time order");
    let mut v = Vec::new();
    let undisturbed: Vec<String> = o
        .lost
        .iter()
        .filter(|(ms, manager)| !disturbed(o, manager, *ms))
        .map(|(ms, manager)| {
            format!(
                "{manager} lost its lease at {ms} ms, though no fault touched it or the store in the \
                 {} ms before",
                o.lease_ms + o.request_timeout_ms
            )
        })
        .collect();
    push(&mut v, INVARIANTS[0], &undisturbed);
    v
}

/// Whether a fault touching `manager` or the store was in effect at some point of the lease
/// period and request timeout up to `ms`.
fn disturbed(o: &Observed<'_>, manager: &str, ms: u64) -> bool {
    let since = ms.saturating_sub(o.lease_ms + o.request_timeout_ms);
    o.faults
        .iter()
        .filter(|f| f.from_ms <= ms && f.to_ms >= since)
        .any(|f| f.nodes.iter().any(|n| n == manager || n == o.store))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(from_ms: u64, to_ms: u64, nodes: &[&str]) -> Touch {
        Touch { from_ms, to_ms, nodes: nodes.iter().map(|n| n.to_string()).collect() }
    }

    fn judge(lost: &[(u64, &str)], faults: &[Touch]) -> Vec<Violation> {
        let lost: Vec<(u64, String)> = lost.iter().map(|&(ms, m)| (ms, m.to_string())).collect();
        check(&Observed { lost: &lost, faults, store: "store", lease_ms: 400, request_timeout_ms: 200 })
    }

    #[test]
    fn a_lease_lost_to_a_fault_on_the_manager_or_the_store_is_no_violation() {
        // Paused from 300 to 1500 ms, and the lease lapsed: lost as it resumed.
        assert!(judge(&[(1500, "manager")], &[touch(300, 1500, &["manager"])]).is_empty());
        // The link to the store clogged until 1000 ms; the last renewal answered 300 ms later.
        assert!(judge(&[(1300, "manager")], &[touch(700, 1000, &["manager", "store"])]).is_empty());
        // The store itself answering late.
        assert!(judge(&[(900, "manager-standby")], &[touch(800, 850, &["store"])]).is_empty());
    }

    #[test]
    fn a_lease_lost_with_nothing_in_the_way_is_flagged() {
        // Renewals that end the lease (a term counted backwards): lost in a fault-free run.
        let v = judge(&[(110, "manager")], &[]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].invariant, "lease-lost-undisturbed");
        assert!(v[0].detail.contains("manager lost its lease at 110 ms"), "{v:?}");
        // A standby that took the lease from a live leader: the fault was the standby's own.
        let stolen = judge(&[(1600, "manager-standby")], &[touch(1000, 1500, &["manager"])]);
        assert_eq!(stolen.len(), 1, "{stolen:?}");
        // A fault that ended more than a lease period and a request timeout before, or
        // touched someone else.
        assert!(judge(&[(2100, "manager")], &[touch(1000, 1500, &["manager"])]).is_empty());
        assert_eq!(judge(&[(2101, "manager")], &[touch(1000, 1500, &["manager"])]).len(), 1);
        assert_eq!(judge(&[(1200, "manager")], &[touch(1000, 1500, &["worker-1", "broker-2"])]).len(), 1);
    }
}
