//! Pure power planning: from an action, the state found and the commands a
//! BMC offers, the commands to send and the states to wait for.

use super::types::{PowerAction, PowerCommand, PowerState};

/// One step of a power plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Send(PowerCommand),
    /// Poll until the state is reached; `soft` picks the soft deadline.
    WaitFor {
        state: PowerState,
        soft: bool,
    },
}

use Step::{Send, WaitFor};

const WAIT_ON: Step = WaitFor {
    state: PowerState::On,
    soft: false,
};
const WAIT_OFF: Step = WaitFor {
    state: PowerState::Off,
    soft: false,
};

/// The steps that carry out `action` on a machine found in `current`, using
/// only commands in `offered`. An empty plan means nothing needs doing.
/// `Err` names the command the BMC lacks and that cannot be emulated.
pub fn plan(
    action: PowerAction,
    current: PowerState,
    offered: &[PowerCommand],
) -> Result<Vec<Step>, PowerCommand> {
    use PowerCommand as C;
    let has = |c: PowerCommand| offered.contains(&c);
    let need = |c: PowerCommand| if has(c) { Ok(c) } else { Err(c) };
    let power_on = || -> Result<Vec<Step>, PowerCommand> { Ok(vec![Send(need(C::On)?), WAIT_ON]) };
    // Hard off then on: the emulation of a missing restart or cycle.
    let off_then_on = || -> Result<Vec<Step>, PowerCommand> {
        Ok(vec![
            Send(need(C::ForceOff)?),
            WAIT_OFF,
            Send(need(C::On)?),
            WAIT_ON,
        ])
    };
    match (action, current) {
        (PowerAction::On, PowerState::On)
        | (PowerAction::Off | PowerAction::Soft, PowerState::Off) => Ok(Vec::new()),
        // Reset and cycle of an off machine power it on: the caller wants
        // the machine to (re)boot, and an off machine has nothing to reset.
        (PowerAction::On | PowerAction::Reset | PowerAction::Cycle, PowerState::Off) => power_on(),
        (PowerAction::Off, PowerState::On) => Ok(vec![Send(need(C::ForceOff)?), WAIT_OFF]),
        (PowerAction::Soft, PowerState::On) => Ok(vec![
            Send(need(C::GracefulShutdown)?),
            WaitFor {
                state: PowerState::Off,
                soft: true,
            },
        ]),
        // A restart's off phase may be too short to observe; only the end
        // state can be verified.
        (PowerAction::Reset, PowerState::On) if has(C::ForceRestart) => {
            Ok(vec![Send(C::ForceRestart), WAIT_ON])
        }
        (PowerAction::Cycle, PowerState::On) if has(C::PowerCycle) => {
            Ok(vec![Send(C::PowerCycle), WAIT_ON])
        }
        (PowerAction::Reset | PowerAction::Cycle, PowerState::On) => off_then_on(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PowerCommand as C;

    const ALL: &[PowerCommand] = &[
        C::On,
        C::ForceOff,
        C::GracefulShutdown,
        C::ForceRestart,
        C::PowerCycle,
    ];
    /// What sushy-tools' fake driver offers: no PowerCycle.
    const SUSHY: &[PowerCommand] = &[C::On, C::ForceOff, C::GracefulShutdown, C::ForceRestart];

    fn sends(steps: &[Step]) -> Vec<PowerCommand> {
        steps
            .iter()
            .filter_map(|s| match s {
                Send(c) => Some(*c),
                WaitFor { .. } => None,
            })
            .collect()
    }

    #[test]
    fn already_there_sends_nothing() {
        assert!(
            plan(PowerAction::On, PowerState::On, ALL)
                .unwrap()
                .is_empty()
        );
        assert!(
            plan(PowerAction::Off, PowerState::Off, ALL)
                .unwrap()
                .is_empty()
        );
        assert!(
            plan(PowerAction::Soft, PowerState::Off, ALL)
                .unwrap()
                .is_empty()
        );
        // Even with nothing offered: no command is needed.
        assert!(
            plan(PowerAction::Off, PowerState::Off, &[])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn reset_and_cycle_of_an_off_machine_power_it_on() {
        for action in [PowerAction::Reset, PowerAction::Cycle] {
            let steps = plan(action, PowerState::Off, ALL).unwrap();
            assert_eq!(steps, vec![Send(C::On), WAIT_ON], "{action}");
        }
    }

    #[test]
    fn native_commands_when_offered() {
        let reset = plan(PowerAction::Reset, PowerState::On, ALL).unwrap();
        assert_eq!(sends(&reset), vec![C::ForceRestart]);
        let cycle = plan(PowerAction::Cycle, PowerState::On, ALL).unwrap();
        assert_eq!(sends(&cycle), vec![C::PowerCycle]);
    }

    #[test]
    fn missing_cycle_is_emulated_by_off_wait_on() {
        let steps = plan(PowerAction::Cycle, PowerState::On, SUSHY).unwrap();
        assert_eq!(
            steps,
            vec![Send(C::ForceOff), WAIT_OFF, Send(C::On), WAIT_ON]
        );
    }

    #[test]
    fn missing_restart_is_emulated_too() {
        let offered = &[C::On, C::ForceOff];
        let steps = plan(PowerAction::Reset, PowerState::On, offered).unwrap();
        assert_eq!(sends(&steps), vec![C::ForceOff, C::On]);
    }

    #[test]
    fn soft_off_waits_with_the_soft_deadline() {
        let steps = plan(PowerAction::Soft, PowerState::On, ALL).unwrap();
        assert_eq!(
            steps[1],
            WaitFor {
                state: PowerState::Off,
                soft: true
            }
        );
    }

    #[test]
    fn unemulatable_actions_name_the_missing_command() {
        assert_eq!(
            plan(PowerAction::Soft, PowerState::On, &[C::On, C::ForceOff]),
            Err(C::GracefulShutdown)
        );
        assert_eq!(
            plan(PowerAction::On, PowerState::Off, &[C::ForceOff]),
            Err(C::On)
        );
        assert_eq!(
            plan(PowerAction::Cycle, PowerState::On, &[C::On]),
            Err(C::ForceOff)
        );
    }
}
