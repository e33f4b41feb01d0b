//! The machine life cycle: every status a machine can have and the one table of moves between them.
//!
//! A machine enters as `Registered` (known, not yet offered), is put on the
//! shelf with UpperPM (`Available`), handed to a tenant with AllocatePM
//! (`Allocated`), installed (`Installing` → `Running`, or `Failed`), and taken
//! back with RecyclePM. Every action that changes status goes through
//! [`transition`], so a refusal always names the current status and what the
//! action needed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a machine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Known to ironrack, not yet offered to tenants.
    Registered,
    /// On the shelf: free to allocate.
    Available,
    /// Given to a tenant, no operating system installed by ironrack yet.
    Allocated,
    /// An install task runs on it.
    Installing,
    /// Installed and handed over.
    Running,
    /// Taken out of service by an operator.
    Maintenance,
    /// The last install failed; the tenant may retry or it may be recycled.
    Failed,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Registered,
        Status::Available,
        Status::Allocated,
        Status::Installing,
        Status::Running,
        Status::Maintenance,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Registered => "Registered",
            Status::Available => "Available",
            Status::Allocated => "Allocated",
            Status::Installing => "Installing",
            Status::Running => "Running",
            Status::Maintenance => "Maintenance",
            Status::Failed => "Failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = ();

    /// Case-insensitive, since callers type these by hand.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or(())
    }
}

/// Something that moves a machine from one status to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// UpperPM: offer the machine to tenants.
    Upper,
    /// AllocatePM (or a tenant named at creation).
    Allocate,
    /// RecyclePM: take it back from its tenant.
    Recycle,
    /// An install task starts.
    InstallStart,
    /// The install task finished.
    InstallSucceed,
    /// The install task failed or was cancelled.
    InstallFail,
    /// An operator takes the machine out of service.
    EnterMaintenance,
    /// DeletePM / DeletePMV2: the machine leaves the inventory.
    Delete,
}

/// What happens to a machine after an event: a new status, or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    To(Status),
    Removed,
}

use Status::*;

/// The whole life cycle. Anything not listed is refused.
const TABLE: &[(Event, &[Status], Outcome)] = &[
    (Event::Upper, &[Registered, Maintenance], Outcome::To(Available)),
    (Event::Allocate, &[Available], Outcome::To(Allocated)),
    (Event::Recycle, &[Allocated, Running, Failed], Outcome::To(Available)),
    (Event::InstallStart, &[Allocated, Running, Failed], Outcome::To(Installing)),
    (Event::InstallSucceed, &[Installing], Outcome::To(Running)),
    (Event::InstallFail, &[Installing], Outcome::To(Failed)),
    (Event::EnterMaintenance, &[Registered, Available], Outcome::To(Maintenance)),
    (Event::Delete, &[Registered, Available, Maintenance], Outcome::Removed),
];

/// The move `event` makes from `from`, or the statuses it would have needed.
pub fn transition(from: Status, event: Event) -> Result<Outcome, &'static [Status]> {
    let (_, allowed, outcome) = TABLE
        .iter()
        .find(|(e, _, _)| *e == event)
        .expect("every event has a row in the life-cycle table");
    if allowed.contains(&from) {
        Ok(*outcome)
    } else {
        Err(allowed)
    }
}

/// "Available" or "Registered or Maintenance", for refusals.
pub fn describe_allowed(allowed: &[Status]) -> String {
    let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
    match names.as_slice() {
        [] => "nothing".to_owned(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {}", rest.join(", "), last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_runs_end_to_end() {
        let mut s = Registered;
        for (ev, want) in [
            (Event::Upper, Available),
            (Event::Allocate, Allocated),
            (Event::InstallStart, Installing),
            (Event::InstallSucceed, Running),
            (Event::Recycle, Available),
        ] {
            s = match transition(s, ev).unwrap() {
                Outcome::To(next) => next,
                Outcome::Removed => panic!("unexpected removal"),
            };
            assert_eq!(s, want);
        }
        assert_eq!(transition(s, Event::Delete), Ok(Outcome::Removed));
    }

    #[test]
    fn refusals_name_what_was_needed() {
        let err = transition(Allocated, Event::Delete).unwrap_err();
        assert_eq!(
            describe_allowed(err),
            "Registered, Available or Maintenance"
        );
        assert_eq!(
            describe_allowed(transition(Registered, Event::Allocate).unwrap_err()),
            "Available"
        );
    }

    #[test]
    fn every_event_has_exactly_one_row() {
        for ev in [
            Event::Upper,
            Event::Allocate,
            Event::Recycle,
            Event::InstallStart,
            Event::InstallSucceed,
            Event::InstallFail,
            Event::EnterMaintenance,
            Event::Delete,
        ] {
            assert_eq!(TABLE.iter().filter(|(e, _, _)| *e == ev).count(), 1);
        }
    }

    #[test]
    fn status_parses_case_insensitively() {
        assert_eq!("available".parse::<Status>(), Ok(Available));
        assert_eq!("RUNNING".parse::<Status>(), Ok(Running));
        assert!("gone".parse::<Status>().is_err());
    }
}
