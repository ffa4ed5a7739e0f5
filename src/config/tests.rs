use super::*;

#[test]
fn search_query_concurrency_defaults_to_half_the_cores_and_never_zero() {
    let mut search = Settings::default().search;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(search.query_concurrency(), cores.div_ceil(2));
    assert!(search.query_concurrency() >= 1);
    search.max_concurrent_queries = 3;
    assert_eq!(search.query_concurrency(), 3);
}

#[test]
fn defaults_are_valid_and_flags_win_over_file() {
    Settings::default().validate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(
        &file,
        "node_id = 7\nhttp_addr = \"127.0.0.1:9000\"\n[raft]\nsnapshot_logs = 10\n",
    )
    .unwrap();
    let overrides = Overrides {
        node_id: Some(9),
        ..Default::default()
    };
    let s = Settings::load(Some(&file), &overrides).unwrap();
    assert_eq!(
        (s.node_id, s.http_addr.as_str(), s.raft.snapshot_logs),
        (9, "127.0.0.1:9000", 10)
    );
}

#[test]
fn example_config_files_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let single =
        Settings::load(Some(&root.join("single-node.toml")), &Overrides::default()).unwrap();
    assert_eq!(
        single,
        Settings::default(),
        "single-node.toml spells out the defaults"
    );
    for i in 1..=3u64 {
        let s = Settings::load(
            Some(&root.join(format!("cluster/node{i}.toml"))),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.node_id, i);
        assert_eq!(s.join.is_some(), i != 1);
    }
}

#[test]
fn invalid_settings_are_refused_with_a_reason() {
    let mut s = Settings::default();
    s.raft.election_timeout_min_ms = 150;
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("election_timeout_min_ms"));
    let s = Settings {
        http_addr: "nope".into(),
        ..Settings::default()
    };
    assert!(s.validate().is_err());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "no_such_key = 1\n").unwrap();
    assert!(Settings::load(Some(&file), &Overrides::default()).is_err());
}

#[test]
fn media_limits_and_cdn_url_are_checked() {
    let mut s = Settings::default();
    s.media.cdn_base_url = Some("https://cdn.example.com/shop".into());
    s.validate().unwrap();
    for bad in ["cdn.example.com", "https://", "ftp://x", "https://x/?a=1"] {
        s.media.cdn_base_url = Some(bad.into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("cdn_base_url"), "{bad}: {e}");
    }
    s.media.cdn_base_url = None;
    s.media.max_upload_bytes = 10;
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("max_upload_bytes"));
}

fn origins(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn cors_origins_are_written_as_browsers_send_them() {
    for good in [
        &[][..],
        &["*"],
        &["https://shop.example.com"],
        &["http://localhost:5173", "https://admin.example.com:8443"],
    ] {
        check_origins(&origins(good)).unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
    for bad in [
        &["https://shop.example.com/"][..],
        &["https://shop.example.com/path"],
        &["shop.example.com"],
        &["ftp://shop.example.com"],
        &["*", "https://shop.example.com"],
        &["HTTPS://Shop.Example.com"],
    ] {
        assert!(check_origins(&origins(bad)).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn trusted_proxies_are_addresses_or_networks() {
    let mut http = Settings::default().http;
    http.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into(), "fd00::/8".into()];
    let nets = http.trusted_proxy_networks().unwrap();
    assert!(nets[0].contains(&"10.200.0.1".parse::<std::net::IpAddr>().unwrap()));
    assert!(nets[1].contains(&"::1".parse::<std::net::IpAddr>().unwrap()));
    for bad in ["10.0.0.0/33", "proxy.local"] {
        http.trusted_proxies = vec![bad.into()];
        assert!(http.trusted_proxy_networks().is_err(), "{bad} accepted");
    }
}
