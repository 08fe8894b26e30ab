//! Locations that share one build: same context, Dockerfile, settings and so the same content
//! key (two code locations of one project, say). The first of them builds and pushes; the
//! others wait for its image and only tag and push it under their own names, so the registry
//! gets one image (one digest) under every location's tags.

use tokio::sync::watch;

use super::engine::BuiltImage;
use super::outcome::Failure;
use super::target::{BuildTarget, LABEL_LOCATION};

/// What one target does in the run.
pub(crate) enum Role {
    /// Builds on its own.
    Alone,
    /// Builds and pushes, then hands its image to the others of its group (dropped without
    /// one when it fails: then they build on their own).
    Leader(watch::Sender<Option<BuiltImage>>),
    /// Waits for `leader`'s image.
    Follower {
        leader: String,
        image: watch::Receiver<Option<BuiltImage>>,
    },
}

/// Two targets make the same image (tags and the location label aside).
fn same_build(a: &BuildTarget, b: &BuildTarget) -> bool {
    let request = |t: &BuildTarget| {
        let mut r = t.request.clone();
        r.tag = None;
        r.labels.remove(LABEL_LOCATION);
        r
    };
    a.content_key == b.content_key
        && a.image.registry == b.image.registry
        && a.image.name == b.image.name
        && a.context.directory == b.context.directory
        && a.dockerfile == b.dockerfile
        && a.secrets == b.secrets
        && a.push == b.push
        && request(a) == request(b)
}

/// The role of each target, in order. A leader's location label lists its whole group.
pub(crate) fn assign(targets: &mut [Result<BuildTarget, Failure>]) -> Vec<Role> {
    let mut roles: Vec<Role> = Vec::with_capacity(targets.len());
    let mut leader_of: Vec<Option<usize>> = vec![None; targets.len()];
    for i in 0..targets.len() {
        let Ok(target) = &targets[i] else { continue };
        leader_of[i] = (0..i).find(|&j| {
            leader_of[j].is_none() && matches!(&targets[j], Ok(t) if same_build(t, target))
        });
    }
    let mut senders: Vec<Option<watch::Sender<Option<BuiltImage>>>> =
        (0..targets.len()).map(|_| None).collect();
    for i in 0..targets.len() {
        let followers: Vec<usize> = (0..targets.len())
            .filter(|&k| leader_of[k] == Some(i))
            .collect();
        if followers.is_empty() {
            continue;
        }
        let names: Vec<String> = std::iter::once(i)
            .chain(followers)
            .filter_map(|k| targets[k].as_ref().ok().map(|t| t.location.clone()))
            .collect();
        if let Ok(leader) = &mut targets[i] {
            leader
                .request
                .labels
                .insert(LABEL_LOCATION.to_string(), names.join(","));
        }
        senders[i] = Some(watch::channel(None).0);
    }
    for i in 0..targets.len() {
        let role = match (leader_of[i], senders[i].clone()) {
            (Some(j), _) => Role::Follower {
                leader: targets[j]
                    .as_ref()
                    .map(|t| t.location.clone())
                    .unwrap_or_default(),
                image: senders[j]
                    .as_ref()
                    .map(watch::Sender::subscribe)
                    .unwrap_or_else(|| watch::channel(None).1),
            },
            (None, Some(sender)) => Role::Leader(sender),
            (None, None) => Role::Alone,
        };
        roles.push(role);
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{BuildRequest, ContextOptions, DockerfileSource, ImageRef};
    use std::collections::BTreeMap;

    fn target(name: &str, key: &str, dir: &str) -> Result<BuildTarget, Failure> {
        Ok(BuildTarget {
            location: name.into(),
            content_key: key.into(),
            image: ImageRef::parse(&format!("r.example/app:{name}-{key}")).unwrap(),
            extra_tags: vec![],
            cache_image: None,
            dockerfile: DockerfileSource::File(format!("{dir}/Dockerfile").into()),
            context: ContextOptions::new(name, dir),
            push: true,
            secrets: vec![],
            request: BuildRequest {
                tag: Some(name.into()),
                labels: BTreeMap::from([(LABEL_LOCATION.to_string(), name.to_string())]),
                ..Default::default()
            },
        })
    }

    #[test]
    fn same_builds_share_the_first_one_and_its_label_lists_them() {
        let mut targets = vec![
            target("a", "ck-1", "/app"),
            target("b", "ck-1", "/app"),
            target("c", "ck-2", "/other"),
            Err(Failure::new(
                "d",
                crate::build::Step::Configure,
                "x".into(),
                "",
            )),
            target("e", "ck-1", "/app"),
        ];
        let roles = assign(&mut targets);
        assert!(matches!(roles[0], Role::Leader(_)));
        for i in [1, 4] {
            match &roles[i] {
                Role::Follower { leader, .. } => assert_eq!(leader, "a"),
                _ => panic!("target {i} should follow a"),
            }
        }
        assert!(matches!(roles[2], Role::Alone));
        assert!(matches!(roles[3], Role::Alone));
        let label = |i: usize| targets[i].as_ref().unwrap().request.labels[LABEL_LOCATION].clone();
        assert_eq!(label(0), "a,b,e");
        assert_eq!(label(1), "b");
    }

    #[tokio::test]
    async fn followers_learn_when_the_leader_ends_without_an_image() {
        let mut targets = vec![target("a", "ck-1", "/app"), target("b", "ck-1", "/app")];
        let mut roles = assign(&mut targets);
        let Role::Follower { mut image, .. } = roles.remove(1) else {
            panic!("b follows a")
        };
        drop(roles); // the leader ends (failed, or reused from the registry)
        assert!(image.wait_for(Option::is_some).await.is_err());
    }
}
