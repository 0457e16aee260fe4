//! `image`: read an image of the lab's Docker engine and compare its
//! config, layers and history with what the lesson asks.

use course::{ImageCheck, MadeBy, Words};
use host::{ImageFacts, Origin, SandboxHost};

use crate::{Evaluate, Verdict, host_failure, quote};

impl Evaluate for ImageCheck {
    fn evaluate(&self, host: &dyn SandboxHost, lab: &str) -> Verdict {
        let facts = match host.engine_image(lab, &self.name) {
            Ok(Some(facts)) => facts,
            Ok(None) => {
                return Verdict::Fail(format!(
                    "there is no image {} yet (docker images lists what there is)",
                    self.name
                ));
            }
            Err(e) => return host_failure(&e),
        };
        let mut problems = config_problems(self, &facts);
        problems.extend(layer_problems(self, host, lab, &facts));
        if let Some(want) = self.made_by
            && let Some(problem) = origin_problem(want, facts.origin)
        {
            problems.push(problem.to_owned());
        }
        if problems.is_empty() {
            Verdict::Pass(format!(
                "{} is there ({} layers, ID {})",
                self.name,
                facts.layers.len(),
                short_id(&facts.id)
            ))
        } else {
            Verdict::Fail(format!(
                "{} is there, but {}",
                self.name,
                problems.join("; ")
            ))
        }
    }
}

fn config_problems(check: &ImageCheck, facts: &ImageFacts) -> Vec<String> {
    let mut problems = Vec::new();
    for rule in check.env.iter().filter(|r| !r.holds(&facts.env)) {
        problems.push(match &rule.value {
            Some(_) => format!("its environment lacks {} (ENV in the Dockerfile)", rule),
            None => format!("it sets no {} in its environment", rule.name),
        });
    }
    for (key, want, got) in [
        ("CMD", &check.cmd, &facts.cmd),
        ("ENTRYPOINT", &check.entrypoint, &facts.entrypoint),
    ] {
        if let Some(want) = want
            && !want.holds(got)
        {
            problems.push(format!(
                "its {key} is {}, not {}",
                shown_words(got),
                wanted_words(want)
            ));
        }
    }
    if let Some(user) = &check.user
        && &facts.user != user
    {
        problems.push(format!(
            "it runs as {}, not as {user} (USER in the Dockerfile)",
            if facts.user.is_empty() {
                "root"
            } else {
                &facts.user
            }
        ));
    }
    if let Some(workdir) = &check.workdir
        && facts.workdir.trim_end_matches('/') != workdir.trim_end_matches('/')
    {
        problems.push(format!(
            "its working directory is {}, not {workdir} (WORKDIR in the Dockerfile)",
            if facts.workdir.is_empty() {
                "/"
            } else {
                &facts.workdir
            }
        ));
    }
    for port in check
        .exposed_ports
        .iter()
        .filter(|p| !facts.exposed_ports.contains(p))
    {
        problems.push(format!(
            "it does not expose {port} (EXPOSE in the Dockerfile)"
        ));
    }
    for (label, value) in &check.labels {
        match facts.labels.get(label) {
            Some(got) if got == value => {}
            Some(got) => problems.push(format!(
                "its label {label} is {}, not {}",
                quote(got, 60),
                quote(value, 60)
            )),
            None => problems.push(format!("it has no label {label} (LABEL in the Dockerfile)")),
        }
    }
    problems
}

fn layer_problems(
    check: &ImageCheck,
    host: &dyn SandboxHost,
    lab: &str,
    facts: &ImageFacts,
) -> Vec<String> {
    let mut problems = Vec::new();
    let count = facts.layers.len() as u32;
    if let Some(bounds) = check.layers {
        if let Some(most) = bounds.at_most
            && count > most
        {
            problems.push(format!(
                    "it has {count} layers and should have at most {most} (each RUN, COPY and ADD adds one)"
                ));
        }
        if let Some(least) = bounds.at_least
            && count < least
        {
            problems.push(format!(
                "it has {count} layers and should have at least {least}"
            ));
        }
    }
    if let Some(pattern) = &check.history
        && !facts.history.iter().any(|h| pattern.regex().is_match(h))
    {
        problems.push(format!(
            "no step of its history matches {} (docker history --no-trunc {} shows them)",
            quote(pattern.as_str(), 60),
            check.name
        ));
    }
    if let Some(other) = &check.shares_base_with {
        match host.engine_image(lab, other) {
            Ok(Some(base)) => {
                let common = facts
                    .layers
                    .iter()
                    .zip(&base.layers)
                    .take_while(|(a, b)| a == b)
                    .count();
                if common == 0 {
                    problems.push(format!(
                        "it shares no layers with {other} (build it FROM the same base)"
                    ));
                }
            }
            Ok(None) => problems.push(format!(
                "there is no image {other} to compare its layers with"
            )),
            Err(e) => problems.push(format!(
                "its layers could not be compared with {other}: {e}"
            )),
        }
    }
    problems
}

fn origin_problem(want: MadeBy, got: Origin) -> Option<&'static str> {
    match (want, got) {
        (MadeBy::Build, Origin::Build) | (MadeBy::Commit, Origin::Commit) => None,
        (MadeBy::Build, Origin::Commit) => {
            Some("it was made with docker commit, not built from a Dockerfile with docker build")
        }
        (MadeBy::Build, Origin::Other) => {
            Some("it was pulled or loaded, not built from a Dockerfile with docker build")
        }
        (MadeBy::Commit, Origin::Build) => {
            Some("it was built with docker build, not made from a container with docker commit")
        }
        (MadeBy::Commit, Origin::Other) => {
            Some("it was pulled or loaded, not made from a container with docker commit")
        }
    }
}

/// Docker's exec form, as `docker inspect` prints it.
pub(crate) fn shown_words(words: &[String]) -> String {
    if words.is_empty() {
        return "empty".to_owned();
    }
    let text = serde_json::to_string(words).unwrap_or_default();
    quote(&text, 80).trim_matches('"').to_owned()
}

fn wanted_words(want: &Words) -> String {
    match want {
        Words::Exactly(words) => shown_words(words),
        Words::Matching(pattern) => format!("one matching {}", quote(pattern.as_str(), 60)),
    }
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}
