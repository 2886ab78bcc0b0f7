//! The systemd resolver: which cgroup a unit runs in, asked of systemd.

use std::process::Command;

/// Answers "which cgroup does this unit run in?"; `None` when it is not running.
pub trait UnitResolver: Send {
    fn cgroup_of(&mut self, unit: &str) -> Option<String>;
}

/// Asks systemd (`systemctl show -p ControlGroup --value UNIT`). Without systemctl, a
/// `.service` falls back to `system.slice/UNIT`, systemd's default placement.
pub struct SystemdUnits;

impl UnitResolver for SystemdUnits {
    fn cgroup_of(&mut self, unit: &str) -> Option<String> {
        match Command::new("systemctl")
            .args(["show", "-p", "ControlGroup", "--value", "--", unit])
            .output()
        {
            Ok(out) if out.status.success() => {
                let path = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .trim_start_matches('/')
                    .to_string();
                (!path.is_empty()).then_some(path)
            }
            Ok(_) => None,
            Err(_) => Some(format!("system.slice/{unit}")),
        }
    }
}
