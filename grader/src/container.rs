//! `container`: find a container of the lab's Docker engine by name or by
//! image, and compare its state, ports, mounts, network, environment and
//! command with what the lesson asks.

use course::{ContainerCheck, ContainerState};
use host::{ContainerFacts, SandboxHost};

use crate::image::shown_words;
use crate::{Evaluate, Verdict, host_failure, quote};

impl Evaluate for ContainerCheck {
    fn evaluate(&self, host: &dyn SandboxHost, lab: &str) -> Verdict {
        let containers = match host.engine_containers(lab) {
            Ok(all) => all,
            Err(e) => return host_failure(&e),
        };
        let image_id = match &self.image {
            Some(image) => match host.engine_image(lab, image) {
                Ok(found) => found.map(|f| f.id),
                Err(e) => return host_failure(&e),
            },
            None => None,
        };
        let candidates: Vec<&ContainerFacts> = containers
            .iter()
            .filter(|c| self.name.as_ref().is_none_or(|n| &c.name == n))
            .filter(|c| {
                self.image.as_ref().is_none_or(|want| {
                    image_id.as_ref() == Some(&c.image_id) || same_image_name(&c.image, want)
                })
            })
            .collect();
        if candidates.is_empty() {
            return Verdict::Fail(nothing_found(self, &containers));
        }
        // With several candidates (found by image), the one closest to
        // passing says what is left to do.
        let mut best: Option<(&ContainerFacts, Vec<String>)> = None;
        for candidate in candidates {
            let problems = problems(self, candidate);
            if problems.is_empty() {
                return Verdict::Pass(format!(
                    "{} is {}",
                    shown(candidate),
                    state_words(candidate)
                ));
            }
            if best.as_ref().is_none_or(|(_, p)| problems.len() < p.len()) {
                best = Some((candidate, problems));
            }
        }
        let (container, problems) = best.expect("at least one candidate");
        Verdict::Fail(format!(
            "{} is {}, but {}",
            shown(container),
            state_words(container),
            problems.join("; ")
        ))
    }
}

fn nothing_found(check: &ContainerCheck, containers: &[ContainerFacts]) -> String {
    match (&check.name, &check.image) {
        (Some(name), Some(image)) => match containers.iter().find(|c| &c.name == name) {
            Some(other) => format!(
                "the container {name} was made from {}, not from {image}",
                other.image
            ),
            None => format!("there is no container named {name} (docker ps -a lists them all)"),
        },
        (Some(name), None) => {
            format!("there is no container named {name} (docker ps -a lists them all)")
        }
        (None, Some(image)) => {
            format!("there is no container made from {image} (docker ps -a lists them all)")
        }
        (None, None) => "there is no container".to_owned(),
    }
}

fn problems(check: &ContainerCheck, c: &ContainerFacts) -> Vec<String> {
    let mut problems = Vec::new();
    let name = &c.name;
    match (check.state, c.state.as_str()) {
        (ContainerState::Any, _)
        | (ContainerState::Running, "running")
        | (ContainerState::Exited, "exited")
        | (ContainerState::Created, "created") => {}
        (ContainerState::Running, "exited") => {
            problems.push(format!("it should be running (docker start {name})"))
        }
        (ContainerState::Running, _) => {
            problems.push(format!("it was never started (docker start {name})"))
        }
        (ContainerState::Exited, "running") => {
            problems.push(format!("it should have finished (docker stop {name})"))
        }
        (ContainerState::Exited, _) => problems.push("it has not run yet".to_owned()),
        (ContainerState::Created, _) => problems
            .push("it should only be created, not started (docker create makes one)".to_owned()),
    }
    if let Some(code) = check.exit_code
        && c.state == "exited"
        && c.exit_code != code
    {
        problems.push(format!("it exited with code {}, not {code}", c.exit_code));
    }
    for rule in &check.ports {
        let published = c.ports.iter().any(|p| {
            p.container_port == rule.container
                && p.protocol == rule.protocol
                && rule.host.is_none_or(|h| h == p.host_port)
        });
        if published {
            continue;
        }
        if c.ports.is_empty() {
            problems.push(format!(
                "it publishes no port; run it with -p {}",
                publish_flag(rule)
            ));
        } else {
            let have: Vec<String> = c
                .ports
                .iter()
                .map(|p| format!("{}:{}", p.host_port, p.container_port))
                .collect();
            problems.push(format!(
                "it publishes {} but not {} (-p {})",
                have.join(", "),
                rule,
                publish_flag(rule)
            ));
        }
    }
    for rule in &check.mounts {
        match c.mounts.iter().find(|m| m.destination == rule.destination) {
            None => problems.push(format!(
                "nothing is mounted at {} (-v SOURCE:{})",
                rule.destination, rule.destination
            )),
            Some(m) => {
                if let Some(source) = &rule.source
                    && source.trim_end_matches('/') != m.source.trim_end_matches('/')
                {
                    problems.push(format!(
                        "{} comes from {}, not from {source}",
                        rule.destination, m.source
                    ));
                }
            }
        }
    }
    if let Some(network) = &check.network
        && &c.network != network
    {
        problems.push(format!("it is on the network {}, not {network}", c.network));
    }
    for rule in check.env.iter().filter(|r| !r.holds(&c.env)) {
        problems.push(format!("its environment lacks {rule} (-e {rule})"));
    }
    if let Some(pattern) = &check.command
        && !pattern.regex().is_match(&c.command.join(" "))
    {
        problems.push(format!(
            "it runs {}, which does not match {}",
            shown_words(&c.command),
            quote(pattern.as_str(), 60)
        ));
    }
    problems
}

fn shown(c: &ContainerFacts) -> String {
    format!("{} (from {})", c.name, c.image)
}

fn state_words(c: &ContainerFacts) -> String {
    match c.state.as_str() {
        "exited" => format!("exited with code {}", c.exit_code),
        "created" => "created but not started".to_owned(),
        other => other.to_owned(),
    }
}

fn publish_flag(rule: &course::PortRule) -> String {
    let host = rule.host.unwrap_or(rule.container);
    if rule.protocol == "tcp" {
        format!("{host}:{}", rule.container)
    } else {
        format!("{host}:{}/{}", rule.container, rule.protocol)
    }
}

/// `nginx`, `nginx:latest` and `docker.io/library/nginx:latest` are one
/// image to a student.
fn same_image_name(given: &str, wanted: &str) -> bool {
    fn normal(name: &str) -> String {
        let name = name
            .strip_prefix("docker.io/")
            .map(|n| n.strip_prefix("library/").unwrap_or(n))
            .unwrap_or(name);
        let last = name.rsplit('/').next().unwrap_or(name);
        if last.contains(':') || name.contains('@') {
            name.to_owned()
        } else {
            format!("{name}:latest")
        }
    }
    normal(given) == normal(wanted)
}
