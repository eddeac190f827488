//! The mark phase, a pure function of the inventory and the manifests:
//! what is kept, and what the sweep may delete.
//!
//! Kept, per named repository: the targets of its tags (after retention),
//! every revision unless untagged ones are being deleted, the children of
//! kept indexes and the referrers of kept manifests (to a fixpoint), and
//! anything younger than the grace period. Marked: every kept manifest and
//! the blobs it references. Content-addressed repositories (digest and
//! CID names) are kept while a named repository keeps their image (or
//! always, with `keepclones`), and then mark what they reference too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::retention::{expired_tags, policy_for};
use super::scan::{Inventory, RepoInv};
use crate::config::RetentionPolicy;
use crate::disco::names::{NameKind, classify};
use crate::registry::manifest::{self, Kind};
use crate::registry::{Digest, RepoName};

/// What a manifest references.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestInfo {
    /// Blobs (config and layers), and anything digest-like in manifests
    /// disco cannot parse.
    pub refs: Vec<Digest>,
    /// Child manifests (indexes).
    pub children: Vec<Digest>,
    /// The subject (referrers).
    pub subject: Option<Digest>,
}

impl ManifestInfo {
    /// Reads the references of stored manifest bytes. Manifests of types
    /// disco does not accept on push (schema 1, unknown) keep every digest
    /// they mention (except a subject's).
    pub fn of(bytes: &[u8], media_type: &str) -> Self {
        if let Ok(m) = manifest::parse(bytes, Some(media_type)) {
            let mut info = ManifestInfo {
                subject: m.subject.map(|s| s.digest),
                ..Default::default()
            };
            match m.kind {
                Kind::Image => {
                    info.refs = m
                        .config
                        .iter()
                        .chain(&m.layers)
                        .map(|d| d.digest.clone())
                        .collect()
                }
                Kind::Index => {
                    info.children = m.manifests.iter().map(|d| d.digest.clone()).collect()
                }
            }
            return info;
        }
        let mut info = ManifestInfo::default();
        if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
            scan_digests(&v, &mut info.refs);
            if let Some(s) = v.pointer("/subject/digest").and_then(Value::as_str) {
                info.subject = s.parse().ok();
            }
        }
        info
    }
}

fn scan_digests(v: &Value, out: &mut Vec<Digest>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "subject" {
                    continue;
                }
                if (k == "digest" || k == "blobSum")
                    && let Some(d) = v.as_str().and_then(|s| s.parse().ok())
                {
                    out.push(d);
                }
                scan_digests(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| scan_digests(v, out)),
        _ => {}
    }
}

/// Inputs of the mark phase besides the inventory.
pub struct MarkInput<'a> {
    /// References of every readable manifest (revisions and tag targets).
    pub manifests: &'a HashMap<Digest, ManifestInfo>,
    /// Delete untagged manifests everywhere.
    pub delete_untagged: bool,
    /// Retention policies.
    pub policies: &'a [RetentionPolicy],
    /// disco publishes images under digest and CID names here.
    pub content_addressed: bool,
    /// Keep every content-addressed repository.
    pub keep_content_addressed: bool,
    /// The grace period.
    pub grace: Duration,
    /// Now.
    pub now: SystemTime,
    /// Content of unknown age is this old.
    pub started: SystemTime,
    /// Digests linked recently by this process.
    pub recent: &'a (dyn Fn(&Digest) -> bool + Sync),
}

impl MarkInput<'_> {
    fn young(&self, modified: Option<SystemTime>, age: Duration) -> bool {
        let at = modified.unwrap_or(self.started);
        self.now.duration_since(at).unwrap_or_default() < age
    }
}

/// What the sweep deletes (or a dry run reports).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Every digest marked (kept manifests and the blobs they reference).
    pub marked: HashSet<Digest>,
    /// Tags retention deletes: repository, tag, target.
    pub tags: Vec<(RepoName, String, Digest)>,
    /// Untagged manifests deleted: repository, digest, tags whose history
    /// lists it.
    pub manifests: Vec<(RepoName, Digest, Vec<String>)>,
    /// Content-addressed repositories no named repository holds, with the
    /// image they name.
    pub repositories: Vec<(RepoName, Option<Digest>)>,
    /// Unreferenced blobs and their sizes.
    pub blobs: Vec<(Digest, u64)>,
    /// Tags and manifests a `dryrun` retention policy would delete.
    pub policy_dryrun: Vec<(RepoName, String)>,
    /// Unreferenced blobs kept because they are younger than the grace.
    pub young_blobs: usize,
}

struct Marker<'a, 'b> {
    input: &'a MarkInput<'b>,
    marked: HashSet<Digest>,
}

impl Marker<'_, '_> {
    /// Keeps `roots` and what they reach; returns the manifests kept.
    fn keep(&mut self, kept: &mut HashSet<Digest>, roots: impl IntoIterator<Item = Digest>) {
        let mut queue: Vec<Digest> = roots.into_iter().collect();
        while let Some(d) = queue.pop() {
            if !kept.insert(d.clone()) {
                continue;
            }
            self.marked.insert(d.clone());
            if let Some(info) = self.input.manifests.get(&d) {
                self.marked.extend(info.refs.iter().cloned());
                queue.extend(info.children.iter().cloned());
            }
        }
    }
}

/// The root manifest a content-addressed repository names.
fn content_root(name: &RepoName, repo: &RepoInv) -> Option<Digest> {
    match classify(name) {
        NameKind::Digest => {
            let alg = if name.as_str().len() == 64 {
                "sha256"
            } else {
                "sha512"
            };
            format!("{alg}:{}", name.as_str()).parse().ok()
        }
        _ => repo
            .tags
            .get(crate::disco::layout::LATEST)
            .or_else(|| repo.tags.values().next())
            .map(|t| t.digest.clone()),
    }
}

/// Computes the plan.
pub fn plan(inv: &Inventory, input: &MarkInput<'_>) -> Plan {
    let mut out = Plan::default();
    let mut m = Marker {
        input,
        marked: HashSet::new(),
    };
    let mut held: HashSet<Digest> = HashSet::new();
    let mut content: Vec<(&RepoName, &RepoInv)> = Vec::new();
    for (name, repo) in &inv.repos {
        if input.content_addressed && classify(name) != NameKind::Normal {
            content.push((name, repo));
            continue;
        }
        let policy = policy_for(input.policies, name.as_str());
        let mut kept_tags: BTreeMap<&String, &Digest> =
            repo.tags.iter().map(|(t, i)| (t, &i.digest)).collect();
        if let Some(p) = policy {
            for t in expired_tags(p, &repo.tags) {
                if p.dryrun {
                    out.policy_dryrun.push((name.clone(), format!("tag {t}")));
                } else if let Some((t, d)) = kept_tags.remove_entry(&t) {
                    out.tags.push((name.clone(), t.clone(), d.clone()));
                }
            }
        }
        let untagged_age: Option<(Duration, bool)> = if input.delete_untagged {
            Some((Duration::ZERO, false))
        } else {
            policy.and_then(|p| p.untaggedage.map(|a| (a, p.dryrun)))
        };
        let tagged: HashSet<&Digest> = kept_tags.values().copied().collect();
        let mut roots: Vec<Digest> = tagged.iter().map(|d| (*d).clone()).collect();
        let mut candidates: Vec<&Digest> = Vec::new();
        for (d, modified) in &repo.revisions {
            if tagged.contains(d) {
                continue;
            }
            match untagged_age {
                None => roots.push(d.clone()),
                Some((age, _)) => {
                    if input.young(*modified, age.max(input.grace)) || (input.recent)(d) {
                        roots.push(d.clone());
                    } else {
                        candidates.push(d);
                    }
                }
            }
        }
        let mut kept: HashSet<Digest> = HashSet::new();
        m.keep(&mut kept, roots);
        // Referrers of kept manifests are kept, to a fixpoint.
        loop {
            let more: Vec<Digest> = candidates
                .iter()
                .filter(|d| !kept.contains(**d))
                .filter(|d| {
                    input
                        .manifests
                        .get(**d)
                        .and_then(|i| i.subject.as_ref())
                        .is_some_and(|s| kept.contains(s))
                })
                .map(|d| (*d).clone())
                .collect();
            if more.is_empty() {
                break;
            }
            m.keep(&mut kept, more);
        }
        let dry = untagged_age.is_some_and(|(_, dry)| dry);
        let mut dry_kept = Vec::new();
        for d in candidates {
            if kept.contains(d) {
                continue;
            }
            if dry {
                out.policy_dryrun
                    .push((name.clone(), format!("manifest {d}")));
                dry_kept.push(d.clone());
            } else {
                let history = repo.tag_index.get(d).cloned().unwrap_or_default();
                out.manifests.push((name.clone(), d.clone(), history));
            }
        }
        m.keep(&mut kept, dry_kept);
        held.extend(kept);
    }
    for (name, repo) in content {
        let root = content_root(name, repo);
        let newest = repo.tags.values().filter_map(|t| t.modified).max();
        let keep = input.keep_content_addressed
            || root
                .as_ref()
                .is_some_and(|r| held.contains(r) || (input.recent)(r))
            || input.young(newest, input.grace);
        if keep {
            let roots: Vec<Digest> = repo
                .tags
                .values()
                .map(|t| t.digest.clone())
                .chain(repo.revisions.keys().cloned())
                .collect();
            let mut kept = HashSet::new();
            m.keep(&mut kept, roots);
        } else {
            out.repositories.push((name.clone(), root));
        }
    }
    let mut newest_link: HashMap<&Digest, Option<SystemTime>> = HashMap::new();
    for repo in inv.repos.values() {
        for (d, t) in &repo.layers {
            let e = newest_link.entry(d).or_insert(*t);
            *e = match (*e, *t) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
    }
    for (d, b) in &inv.blobs {
        if m.marked.contains(d) {
            continue;
        }
        let link_young = newest_link
            .get(d)
            .is_some_and(|t| input.young(*t, input.grace));
        if link_young || input.young(b.modified, input.grace) || (input.recent)(d) {
            out.young_blobs += 1;
        } else {
            out.blobs.push((d.clone(), b.size));
        }
    }
    out.marked = m.marked;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::gc::scan::{BlobInv, TagInv};

    fn d(s: &str) -> Digest {
        Digest::sha256(s.as_bytes())
    }

    fn n(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    /// Builds an inventory: repositories with tags and revisions, and every
    /// digest named as a stored blob of size 1.
    struct World {
        inv: Inventory,
        manifests: HashMap<Digest, ManifestInfo>,
    }

    impl World {
        fn new() -> Self {
            Self {
                inv: Inventory::default(),
                manifests: HashMap::new(),
            }
        }
        fn blob(&mut self, b: &str) {
            self.inv.blobs.insert(
                d(b),
                BlobInv {
                    size: 1,
                    modified: None,
                },
            );
        }
        fn image(&mut self, repo: &str, m: &str, blobs: &[&str], subject: Option<&str>) {
            self.blob(m);
            for b in blobs {
                self.blob(b);
            }
            self.manifests.insert(
                d(m),
                ManifestInfo {
                    refs: blobs.iter().map(|b| d(b)).collect(),
                    children: vec![],
                    subject: subject.map(d),
                },
            );
            self.inv
                .repos
                .entry(n(repo))
                .or_default()
                .revisions
                .insert(d(m), None);
        }
        fn index(&mut self, repo: &str, m: &str, children: &[&str]) {
            self.blob(m);
            self.manifests.insert(
                d(m),
                ManifestInfo {
                    refs: vec![],
                    children: children.iter().map(|c| d(c)).collect(),
                    subject: None,
                },
            );
            self.inv
                .repos
                .entry(n(repo))
                .or_default()
                .revisions
                .insert(d(m), None);
        }
        fn tag(&mut self, repo: &str, tag: &str, m: &str) {
            self.inv.repos.entry(n(repo)).or_default().tags.insert(
                tag.into(),
                TagInv {
                    digest: d(m),
                    modified: None,
                },
            );
        }
        fn plan(&self, delete_untagged: bool, policies: &[RetentionPolicy]) -> Plan {
            let never = |_: &Digest| false;
            let input = MarkInput {
                manifests: &self.manifests,
                delete_untagged,
                policies,
                content_addressed: true,
                keep_content_addressed: false,
                grace: Duration::ZERO,
                now: SystemTime::now(),
                started: SystemTime::now(),
                recent: &never,
            };
            plan(&self.inv, &input)
        }
    }

    fn blobs(p: &Plan) -> Vec<Digest> {
        let mut v: Vec<Digest> = p.blobs.iter().map(|(d, _)| d.clone()).collect();
        v.sort();
        v
    }

    fn sorted(v: &[&str]) -> Vec<Digest> {
        let mut v: Vec<Digest> = v.iter().map(|s| d(s)).collect();
        v.sort();
        v
    }

    #[test]
    fn unreferenced_blobs_go_revisions_stay_without_delete_untagged() {
        let mut w = World::new();
        w.image("app", "m1", &["c1", "l1", "shared"], None);
        w.image("app", "m2", &["c2", "l2", "shared"], None);
        w.tag("app", "v2", "m2");
        w.blob("orphan");
        let p = w.plan(false, &[]);
        assert_eq!(blobs(&p), sorted(&["orphan"]));
        assert!(p.manifests.is_empty());
        let p = w.plan(true, &[]);
        assert_eq!(blobs(&p), sorted(&["orphan", "m1", "c1", "l1"]));
        assert_eq!(p.manifests.len(), 1);
        assert_eq!(p.manifests[0].1, d("m1"));
    }

    #[test]
    fn index_children_and_referrers_of_kept_manifests_stay() {
        let mut w = World::new();
        w.image("app", "amd64", &["ca", "la"], None);
        w.image("app", "arm64", &["cb", "lb"], None);
        w.index("app", "idx", &["amd64", "arm64"]);
        w.tag("app", "multi", "idx");
        w.image("app", "sig", &["sigcfg", "siglayer"], Some("idx"));
        w.image("app", "sigsig", &["ssc"], Some("sig"));
        // A referrer of a manifest that goes, goes.
        w.image("app", "old", &["oc"], None);
        w.image("app", "oldsig", &["osc"], Some("old"));
        let p = w.plan(true, &[]);
        assert_eq!(blobs(&p), sorted(&["old", "oc", "oldsig", "osc"]));
        let mut gone: Vec<Digest> = p.manifests.iter().map(|m| m.1.clone()).collect();
        gone.sort();
        assert_eq!(gone, sorted(&["old", "oldsig"]));
    }

    #[test]
    fn content_addressed_repositories_follow_their_image() {
        let mut w = World::new();
        w.image("app", "m1", &["c1", "l1"], None);
        w.tag("app", "v1", "m1");
        w.image("app", "m2", &["c2", "l2"], None);
        // Digest and CID repositories of both images.
        for m in ["m1", "m2"] {
            let hex = d(m).hex().to_string();
            w.image(&hex, m, &["c1", "l1", "c2", "l2"][..], None);
            w.tag(&hex, "latest", m);
        }
        let cid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
        w.image(cid, "m2", &[], None);
        w.tag(cid, "latest", "m2");
        // Fix the digest repositories' references to their own image.
        w.manifests.get_mut(&d("m1")).unwrap().refs = vec![d("c1"), d("l1")];
        w.manifests.get_mut(&d("m2")).unwrap().refs = vec![d("c2"), d("l2")];
        let p = w.plan(true, &[]);
        let mut repos: Vec<String> = p.repositories.iter().map(|r| r.0.to_string()).collect();
        repos.sort();
        let mut want = vec![d("m2").hex().to_string(), cid.to_string()];
        want.sort();
        assert_eq!(repos, want);
        assert_eq!(blobs(&p), sorted(&["m2", "c2", "l2"]));
    }

    #[test]
    fn grace_and_recent_links_protect() {
        let mut w = World::new();
        w.image("app", "m1", &["c1"], None);
        w.blob("young");
        w.blob("linked");
        let now = SystemTime::now();
        w.inv.blobs.get_mut(&d("young")).unwrap().modified = Some(now);
        let old = now - Duration::from_secs(7200);
        for b in w.inv.blobs.values_mut() {
            if b.modified.is_none() {
                b.modified = Some(old);
            }
        }
        let recent = |x: &Digest| *x == d("linked");
        let input = MarkInput {
            manifests: &w.manifests,
            delete_untagged: true,
            policies: &[],
            content_addressed: false,
            keep_content_addressed: false,
            grace: Duration::from_secs(3600),
            now,
            started: old,
            recent: &recent,
        };
        let p = plan(&w.inv, &input);
        // m1's revision is of unknown age: it counts from the start (old).
        assert_eq!(blobs(&p), sorted(&["m1", "c1"]));
        assert_eq!(p.young_blobs, 2);
        let input = MarkInput {
            started: now,
            ..input
        };
        let p = plan(&w.inv, &input);
        assert!(p.blobs.is_empty(), "unknown ages count from a recent start");
    }

    #[test]
    fn retention_deletes_tags_and_old_untagged_manifests() {
        let mut w = World::new();
        let t0 = SystemTime::now() - Duration::from_secs(10_000);
        for (i, v) in ["v1", "v2", "v3", "release-1"].iter().enumerate() {
            let m = format!("m-{v}");
            w.image("team/app", &m, &[&format!("c-{v}")], None);
            w.tag("team/app", v, &m);
            let repo = w.inv.repos.get_mut(&n("team/app")).unwrap();
            repo.tags.get_mut(*v).unwrap().modified = Some(t0 + Duration::from_secs(i as u64));
            repo.revisions.insert(d(&m), Some(t0));
        }
        w.image("other", "mo", &["co"], None);
        let policy = RetentionPolicy {
            repositories: vec!["team/*".into()],
            keeptags: Some(1),
            keeppatterns: vec!["release-*".into()],
            untaggedage: Some(Duration::from_secs(60)),
            dryrun: false,
        };
        let p = w.plan(false, std::slice::from_ref(&policy));
        let mut tags: Vec<String> = p.tags.iter().map(|t| t.1.clone()).collect();
        tags.sort();
        assert_eq!(tags, vec!["v1".to_string(), "v2".to_string()]);
        assert_eq!(
            blobs(&p),
            sorted(&["m-v1", "c-v1", "m-v2", "c-v2"]),
            "the untagged manifest of another repository stays"
        );
        let dry = RetentionPolicy {
            dryrun: true,
            ..policy
        };
        let p = w.plan(false, &[dry]);
        assert!(p.tags.is_empty() && p.manifests.is_empty() && p.blobs.is_empty());
        assert_eq!(p.policy_dryrun.len(), 2);
    }
}
