use super::crds;

/// The checked-in CRDs are what the model's types generate (`UPDATE_CRDS=1` rewrites them).
#[test]
fn crds_match_the_model() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/crds");
    let update = std::env::var_os("UPDATE_CRDS").is_some();
    let mut stale = Vec::new();
    for crd in crds::generate() {
        let path = root.join(crd.set.folder()).join(&crd.file_name);
        let want = crds::to_yaml(&crd.crd);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD files (run UPDATE_CRDS=1 cargo nextest run --lib install::tests::crds): {stale:?}"
    );
}

mod values {
    use crate::install::values::{Request, ValuesError, canonical_key, resolve};

    fn resolve_sets(profile: &str, sets: &[&str]) -> Result<crate::install::values::Values, ValuesError> {
        resolve(&Request { profile: profile.into(), files: vec![], sets: sets.iter().map(|s| s.to_string()).collect() })
    }

    fn problems(err: ValuesError) -> Vec<(String, String, String)> {
        match err {
            ValuesError::Invalid(list) => list.into_iter().map(|p| (p.key, p.origin, p.message)).collect(),
            other => panic!("expected invalid values, got {other}"),
        }
    }

    #[test]
    fn profiles_lay_over_the_base_and_sets_over_them() {
        let values =
            resolve_sets("demo", &["controlplane.replicas=3", "controlplane.podDisruptionBudget=true"]).unwrap();
        assert!(values.ztunnel.enabled, "from the demo profile");
        assert_eq!(values.controlplane.replicas, 3, "--set wins over the profile");
        assert_eq!(values.global.hub, "ghcr.io/ambient-mesh", "the base fills the rest");
        assert_eq!(values.controlplane.resources.requests.cpu.as_deref(), Some("10m"));
        let unset = resolve_sets("default", &["controlplane.resources.limits.memory="]).unwrap();
        assert_eq!(unset.controlplane.resources.limits.memory, None, "an empty value unsets an optional quantity");
    }

    #[test]
    fn set_profile_picks_the_profile_as_istioctl_does() {
        let values = resolve(&Request { sets: vec!["profile=ambient".into()], ..Request::profile("default") }).unwrap();
        assert!(values.ztunnel.enabled);
        let err = resolve(&Request { sets: vec!["profile=nosuch".into()], ..Request::profile("default") }).unwrap_err();
        assert!(matches!(err, ValuesError::UnknownProfile { .. }), "{err}");
    }

    #[test]
    fn istio_names_map_to_ours() {
        for (istio, ours) in [
            ("values.global.hub", "global.hub"),
            ("spec.values.global.tag", "global.tag"),
            ("hub", "global.hub"),
            ("meshConfig.trustDomain", "global.trustDomain"),
            ("values.cni.cniBinDir", "cni.binDir"),
            ("cni.cniConfDir", "cni.confDir"),
            ("global.istioNamespace", "global.namespace"),
            ("ztunnel.enabled", "ztunnel.enabled"),
        ] {
            assert_eq!(canonical_key(istio), ours);
        }
    }

    /// Every problem at once, each with its key and where its value came from.
    #[test]
    fn every_problem_is_reported_with_its_origin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, "controlplane:\n  replicas: two\n  nope: 1\nglobal:\n  logFormat: xml\n").unwrap();
        let request = Request {
            profile: "ambient".into(),
            files: vec![file.clone()],
            sets: vec!["global.tag=a b".into(), "cni.binDir=bin".into()],
        };
        let found = problems(resolve(&request).unwrap_err());
        let shown = file.display().to_string();
        assert!(
            found.iter().any(|(k, o, m)| k == "controlplane.nope" && *o == shown && m.contains("unknown key")),
            "{found:?}"
        );
        // A wrong type stops the typed check, so the file's first type error is what is reported
        // with the merge problems.
        assert!(found.iter().any(|(k, o, _)| k == "controlplane.replicas" && *o == shown), "{found:?}");
        let fixed =
            Request { sets: vec!["global.tag=a b".into(), "cni.binDir=bin".into()], ..Request::profile("ambient") };
        let found = problems(resolve(&fixed).unwrap_err());
        let keys: Vec<&str> = found.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(keys, ["global.tag", "cni.binDir"], "{found:?}");
        assert!(found.iter().all(|(_, o, _)| o.starts_with("--set ")), "{found:?}");
    }

    #[test]
    fn the_platform_sets_defaults_only_where_nobody_else_did() {
        let gke = resolve_sets("ambient", &["global.platform=gke"]).unwrap();
        assert_eq!(gke.cni.bin_dir, "/home/kubernetes/bin");
        let own = resolve_sets("ambient", &["global.platform=gke", "cni.binDir=/opt/own"]).unwrap();
        assert_eq!(own.cni.bin_dir, "/opt/own");
        let kind = resolve_sets("ambient", &["global.platform=kind"]).unwrap();
        assert_eq!(kind.cni.bin_dir, "/opt/cni/bin");
    }

    #[test]
    fn one_replica_with_a_disruption_budget_is_refused() {
        let found = problems(resolve_sets("default", &["controlplane.replicas=1"]).unwrap_err());
        assert_eq!(found[0].0, "controlplane.podDisruptionBudget");
        assert!(found[0].2.contains("blocks every node drain"), "{found:?}");
    }
}
