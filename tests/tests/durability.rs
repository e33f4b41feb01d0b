//! Secrets at rest and in logs, and acknowledged writes surviving `kill -9`.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironrack_tests::{Controller, assert_err};

const PASSWORD: &str = "Zq7-bmc-Secret-4711";

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn secrets_are_sealed_at_rest_and_never_logged() {
    let mut c = Controller::start_with_env(&[("RUST_LOG", "trace")]);
    let api = c.admin();
    let v = api.ok(
        "CreatePMV2",
        &[
            ("Region", "r1"),
            ("IPMIIP", "127.0.0.50"),
            ("IPMIPassword", PASSWORD),
        ],
    );
    let pmid = v["PMID"].as_str().unwrap().to_owned();
    api.ok(
        "UpdatePM",
        &[("PMID", &pmid), ("IPMIPassword", &format!("{PASSWORD}-2"))],
    );
    let k = api.ok("CreateAPIKey", &[("Admin", "true")]);
    let private = k["PrivateKey"].as_str().unwrap().to_owned();
    let d = api.ok("DescribePM", &[("Region", "r1"), ("PMIDs.0", &pmid)]);
    assert_eq!(d["Infos"][0]["IPMIPassword"], format!("{PASSWORD}-2"));
    c.kill9();

    for f in files_under(&c.data_dir) {
        let bytes = std::fs::read(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "{name} holds the BMC password in clear"
        );
        if name != "admin-credentials.json" {
            assert!(
                !bytes
                    .windows(private.len())
                    .any(|w| w == private.as_bytes()),
                "{name} holds an API private key in clear"
            );
        }
    }
    for name in ["seal.key", "admin-credentials.json"] {
        let mode = std::fs::metadata(c.data_dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} must be 0600");
    }
    let log = c.log_text();
    assert!(log.contains("CreatePMV2"), "trace logging ran: {log}");
    assert!(!log.contains(PASSWORD), "the BMC password reached the log");
    assert!(!log.contains(&private), "a private key reached the log");
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut c = Controller::start();
    let api = c.admin();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let api = api.clone();
            let acked = acked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let _ = &http;
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let ip = format!("127.{}.{}.{}", 10 + w, i / 250, i % 250);
                    // A write the controller dies during is neither acked nor checked.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        api.call(
                            "CreatePMV2",
                            &[("Region", "r1"), ("IPMIIP", &ip), ("Name", &ip)],
                        )
                    }));
                    match result {
                        Ok(v) if v["RetCode"] == 0 => acked
                            .lock()
                            .unwrap()
                            .push(v["PMID"].as_str().unwrap().to_owned()),
                        _ => break,
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    c.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "too few writes before the kill: {}",
        acked.len()
    );

    c.restart();
    let api = c.admin();
    let v = api.ok("ListPMV2", &[("Region", "r1"), ("Limit", "1")]);
    assert!(v["TotalCount"].as_u64().unwrap() as usize >= acked.len());
    for chunk in acked.chunks(100) {
        let mut params = vec![
            ("Region".to_string(), "r1".to_string()),
            ("Limit".into(), "1000".into()),
        ];
        for (i, id) in chunk.iter().enumerate() {
            params.push((format!("PMIDs.{i}"), id.clone()));
        }
        let p: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let v = api.ok("ListPMV2", &p);
        assert_eq!(
            v["TotalCount"].as_u64().unwrap() as usize,
            chunk.len(),
            "an acknowledged machine was lost"
        );
    }
    // And the restarted controller still refuses what it should.
    assert_err(&api.call("ListPMV2", &[]), 220, "[Region]");
}
