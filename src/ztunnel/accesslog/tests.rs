use std::time::UNIX_EPOCH;

use super::*;

fn identity(namespace: &str, service_account: &str) -> Identity {
    Identity::new("cluster.local", namespace, service_account).expect("valid identity")
}

fn full_entry() -> AccessLogEntry {
    AccessLogEntry {
        src_workload: Some("sleep-7d9f".to_string()),
        src_namespace: Some("default".to_string()),
        src_identity: Some(identity("default", "sleep")),
        dst_hbone_addr: Some("10.10.0.6:8080".parse().unwrap()),
        dst_service: Some("httpbin.web.svc.cluster.local".to_string()),
        dst_workload: Some("httpbin-5c4b".to_string()),
        dst_namespace: Some("web".to_string()),
        dst_identity: Some(identity("web", "httpbin")),
        policy: Some("web/allow-sleep".to_string()),
        ..AccessLogEntry::new("10.10.0.5:43210".parse().unwrap(), "10.10.0.6:15008".parse().unwrap())
    }
}

fn closed<'a>(entry: &'a AccessLogEntry, reporter: Reporter, error: Option<&'a str>) -> ClosedConnection<'a> {
    ClosedConnection {
        entry,
        reporter,
        start_time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        duration: Duration::from_millis(1234),
        received: 300,
        sent: 4000,
        response_flags: if error.is_some() { ResponseFlags::Connect } else { ResponseFlags::None },
        error,
    }
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_002)
}

#[test]
fn format_parses_case_insensitively_and_names_bad_values() {
    assert_eq!("off".parse::<AccessLogFormat>().unwrap(), AccessLogFormat::Off);
    assert_eq!("TEXT".parse::<AccessLogFormat>().unwrap(), AccessLogFormat::Text);
    assert_eq!("Json".parse::<AccessLogFormat>().unwrap(), AccessLogFormat::Json);
    let error = "yaml".parse::<AccessLogFormat>().unwrap_err().to_string();
    assert!(error.contains("\"yaml\"") && error.contains("off, text or json"), "{error}");
    for format in [AccessLogFormat::Off, AccessLogFormat::Text, AccessLogFormat::Json] {
        assert_eq!(format.to_string().parse::<AccessLogFormat>().unwrap(), format);
    }
}

#[test]
fn format_is_a_clap_value_enum() {
    use clap::ValueEnum as _;
    let names: Vec<String> = AccessLogFormat::value_variants()
        .iter()
        .map(|v| v.to_possible_value().expect("no skipped variants").get_name().to_string())
        .collect();
    assert_eq!(names, ["off", "text", "json"]);
}

#[test]
fn text_line_has_every_field() {
    let entry = full_entry();
    let line = render(AccessLogFormat::Text, &closed(&entry, Reporter::Source, None), now()).expect("a line");
    let expected = "2023-11-14T22:13:22Z info access connection complete \
        start_time=2023-11-14T22:13:20Z \
        src.addr=10.10.0.5:43210 src.workload=sleep-7d9f src.namespace=default \
        src.identity=spiffe://cluster.local/ns/default/sa/sleep \
        dst.addr=10.10.0.6:15008 dst.hbone_addr=10.10.0.6:8080 dst.service=httpbin.web.svc.cluster.local \
        dst.workload=httpbin-5c4b dst.namespace=web dst.identity=spiffe://cluster.local/ns/web/sa/httpbin \
        direction=outbound reporter=source bytes_sent=300 bytes_recv=4000 duration=1234ms \
        response_flags=- policy=web/allow-sleep";
    assert_eq!(line, expected);
}

#[test]
fn text_line_omits_absent_fields_and_quotes_errors() {
    let entry = AccessLogEntry::new("[fd00::1]:5000".parse().unwrap(), "10.10.0.6:80".parse().unwrap());
    let line = render(AccessLogFormat::Text, &closed(&entry, Reporter::Destination, Some("reset by \"peer\"")), now())
        .expect("a line");
    assert!(line.contains(" error access connection complete "), "{line}");
    assert!(line.contains("src.addr=[fd00::1]:5000 dst.addr=10.10.0.6:80 direction=inbound"), "{line}");
    // Inbound: bytes_sent is what the local server sent back.
    assert!(line.contains("bytes_sent=4000 bytes_recv=300"), "{line}");
    assert!(line.ends_with(r#"response_flags=CONNECT error="reset by \"peer\"""#), "{line}");
    for absent in ["src.workload", "src.identity", "dst.service", "dst.identity", "policy="] {
        assert!(!line.contains(absent), "{absent} in {line}");
    }
    assert!(!line.contains('\n'));
}

#[test]
fn json_line_is_one_object_with_typed_fields() {
    let entry = full_entry();
    let line = render(AccessLogFormat::Json, &closed(&entry, Reporter::Source, Some("timed out\nafter 10s")), now())
        .expect("a line");
    assert!(!line.contains('\n'), "one line: {line}");
    let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    assert_eq!(value["time"], "2023-11-14T22:13:22Z");
    assert_eq!(value["level"], "error");
    assert_eq!(value["scope"], "access");
    assert_eq!(value["message"], "connection complete");
    assert_eq!(value["start_time"], "2023-11-14T22:13:20Z");
    assert_eq!(value["src.addr"], "10.10.0.5:43210");
    assert_eq!(value["src.workload"], "sleep-7d9f");
    assert_eq!(value["src.identity"], "spiffe://cluster.local/ns/default/sa/sleep");
    assert_eq!(value["dst.addr"], "10.10.0.6:15008");
    assert_eq!(value["dst.hbone_addr"], "10.10.0.6:8080");
    assert_eq!(value["dst.service"], "httpbin.web.svc.cluster.local");
    assert_eq!(value["dst.identity"], "spiffe://cluster.local/ns/web/sa/httpbin");
    assert_eq!(value["direction"], "outbound");
    assert_eq!(value["reporter"], "source");
    assert_eq!(value["bytes_sent"], 300);
    assert_eq!(value["bytes_recv"], 4000);
    assert_eq!(value["duration"], "1234ms");
    assert_eq!(value["response_flags"], "CONNECT");
    assert_eq!(value["policy"], "web/allow-sleep");
    assert_eq!(value["error"], "timed out\nafter 10s");
}

#[test]
fn json_line_omits_absent_fields() {
    let entry = AccessLogEntry::new("10.10.0.5:1".parse().unwrap(), "10.10.0.6:2".parse().unwrap());
    let line = render(AccessLogFormat::Json, &closed(&entry, Reporter::Destination, None), now()).expect("a line");
    let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    let object = value.as_object().expect("an object");
    for absent in ["src.workload", "src.identity", "dst.hbone_addr", "dst.service", "policy", "error"] {
        assert!(!object.contains_key(absent), "{absent} in {line}");
    }
    assert_eq!(value["level"], "info");
}

#[test]
fn timestamps_keep_microseconds() {
    let at = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
    assert_eq!(timestamp(at), "2023-11-14T22:13:20.123456Z");
}

#[test]
fn off_renders_and_writes_nothing() {
    let entry = full_entry();
    let connection = closed(&entry, Reporter::Source, Some("boom"));
    assert_eq!(render(AccessLogFormat::Off, &connection, now()), None);
    let sink = MemorySink::new();
    let log = AccessLog::new(AccessLogFormat::Off, sink.clone());
    assert!(!log.is_enabled());
    log.write(&connection);
    assert!(sink.lines().is_empty());
    assert!(!AccessLog::off().is_enabled());
}

#[test]
fn enabled_log_writes_one_line_per_connection_to_its_sink() {
    let entry = full_entry();
    let sink = MemorySink::new();
    let log = AccessLog::new(AccessLogFormat::Text, sink.clone());
    log.write(&closed(&entry, Reporter::Source, None));
    log.write(&closed(&entry, Reporter::Destination, None));
    let lines = sink.lines();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains("direction=outbound") && lines[1].contains("direction=inbound"), "{lines:?}");
}
