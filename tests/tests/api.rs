//! The action API end to end: a real controller process, signed calls, every inventory action.

use ironrack_tests::{Api, Controller, assert_err};
use serde_json::{Value, json};

fn create(api: &Api, extra: &[(&str, &str)]) -> String {
    let mut params = vec![("Region", "r1")];
    params.extend_from_slice(extra);
    let v = api.ok("CreatePMV2", &params);
    v["PMID"].as_str().unwrap().to_owned()
}

fn tenant(api: &Api, name: &str) -> (i64, Api) {
    let t = api.ok("CreateTenant", &[("CompanyName", name)]);
    let company = t["CompanyID"].as_i64().unwrap();
    let k = api.ok("CreateAPIKey", &[("CompanyID", &company.to_string())]);
    let key = Api::new(
        &api.endpoint,
        k["PublicKey"].as_str().unwrap(),
        k["PrivateKey"].as_str().unwrap(),
    );
    (company, key)
}

fn status_of(api: &Api, pmid: &str) -> String {
    let v = api.ok("DescribePM", &[("Region", "r1"), ("PMIDs.0", pmid)]);
    v["Infos"][0]["Status"].as_str().unwrap().to_owned()
}

#[test]
fn gateway_codes() {
    let c = Controller::start();
    let api = c.admin();
    // No Action at all.
    let v = api.raw("application/x-www-form-urlencoded", b"Region=r1".to_vec());
    assert_err(&v, 160, "Action");
    assert_eq!(v["Action"], "Response");
    assert_err(&api.call("Nope", &[]), 161, "Nope");
    assert_err(
        &api.call("PreparePMKVM", &[("PMID", "x")]),
        161,
        "not available in this version",
    );
    // Unsigned, unknown key, wrong signature.
    let v = api.raw(
        "application/x-www-form-urlencoded",
        b"Action=ListPMV2&Region=r1&PublicKey=x".to_vec(),
    );
    assert_err(&v, 170, "Signature");
    let stranger = Api::new(&api.endpoint, "irk-nobody", "secret");
    assert_err(
        &stranger.call("ListPMV2", &[("Region", "r1")]),
        172,
        "irk-nobody",
    );
    let forger = Api::new(&api.endpoint, &api.public_key, "not-the-key");
    assert_err(
        &forger.call("ListPMV2", &[("Region", "r1")]),
        171,
        "Signature",
    );
    // GET with the query string works and answers <Action>Response.
    let v = api.ok("GetIntrospectionSwitch", &[("Region", "r1")]);
    assert_eq!(v["Action"], "GetIntrospectionSwitchResponse");
    assert_eq!(v["IsOpen"], false);
}

#[test]
fn get_requests_with_a_query_string() {
    let c = Controller::start();
    let api = c.admin();
    let mut flat = std::collections::BTreeMap::new();
    for (k, v) in [
        ("Action", "ListPMV2"),
        ("Region", "r1"),
        ("PublicKey", api.public_key.as_str()),
    ] {
        flat.insert(k.to_string(), Value::String(v.to_string()));
    }
    let sig = ironrack_common::signature::sign(&flat, &api.private_key);
    let url = format!(
        "{}?Action=ListPMV2&Region=r1&PublicKey={}&Signature={sig}",
        c.endpoint(),
        api.public_key
    );
    let v: Value = reqwest::blocking::get(url).unwrap().json().unwrap();
    assert_eq!(v["RetCode"], 0, "{v}");
    assert_eq!(v["TotalCount"], 0);
}

#[test]
fn inventory_life_cycle_across_both_generations() {
    let c = Controller::start();
    let api = c.admin();
    let (company, _) = tenant(&api, "Acme");
    let cs = company.to_string();

    // V1 with a tenant named at creation skips the shelf.
    let v = api.ok(
        "CreatePM",
        &[
            ("Region", "r1"),
            ("IPMIIP", "127.0.0.1:6231"),
            ("IPMIUser", "admin"),
            ("IPMIPassword", "pw1"),
            ("Name", "v1-node"),
            ("Label", "blue"),
            ("TargetCompanyID", &cs),
        ],
    );
    let v1 = v["PMID"].as_str().unwrap().to_owned();
    assert_eq!(status_of(&api, &v1), "Allocated");

    let v2 = create(
        &api,
        &[
            ("IPMIIP", "127.0.0.1:6232"),
            ("IPMIUsername", "root"),
            ("Hostname", "web-01"),
            ("IP", "203.0.113.10"),
            ("Tags.0.Key", "rack"),
            ("Tags.0.Value", "7"),
            ("PMTags.0", "gpu"),
            ("ExpireTime", "1900000000"),
        ],
    );
    assert_eq!(status_of(&api, &v2), "Registered");
    api.ok("UpperPM", &[("Region", "r1"), ("PMID", &v2)]);
    assert_eq!(status_of(&api, &v2), "Available");
    api.ok(
        "AllocatePM",
        &[
            ("Region", "r1"),
            ("PMID", &v2),
            ("CompanyID", &cs),
            ("ProjectID", "proj-a"),
        ],
    );
    assert_eq!(status_of(&api, &v2), "Allocated");

    // V1 update is visible through V2 and the other way round.
    api.ok(
        "UpdatePM",
        &[
            ("PMID", &v2),
            ("Remark", "from v1"),
            ("IPMIUser", "operator"),
        ],
    );
    api.ok(
        "UpdatePMV2",
        &[("Region", "r1"), ("PMID", &v1), ("Name", "renamed")],
    );
    let list = api.ok("ListPMV2", &[("Region", "r1"), ("PMIDs.0", &v2)]);
    assert_eq!(list["Infos"][0]["Remark"], "from v1");
    assert_eq!(list["Infos"][0]["IPMIUsername"], "operator");
    assert_eq!(list["Infos"][0]["PMTags"], json!(["gpu"]));
    assert_eq!(list["Infos"][0]["ExpireTime"], 1900000000);
    assert_eq!(list["Infos"][0]["CompanyName"], "Acme");
    let d = api.ok("DescribePM", &[("Region", "r1"), ("PMIDs.0", &v1)]);
    assert_eq!(d["Infos"][0]["Name"], "renamed");
    assert_eq!(d["Infos"][0]["IPMIPassword"], "pw1");
    assert_eq!(
        d["Infos"][0]["BMCDetails"]["Address"],
        "ipmi://127.0.0.1:6231"
    );

    // Refused moves name the state they found.
    assert_err(
        &api.call("UpperPM", &[("Region", "r1"), ("PMID", &v2)]),
        1020,
        "is Allocated",
    );
    assert_err(
        &api.call("DeletePM", &[("PMID", &v2)]),
        1020,
        "Registered, Available or Maintenance",
    );
    assert_err(
        &api.call(
            "RecyclePM",
            &[("Region", "r1"), ("PMID", &v2), ("CompanyID", "42")],
        ),
        230,
        "CompanyID",
    );
    api.ok(
        "RecyclePM",
        &[("Region", "r1"), ("PMID", &v2), ("CompanyID", &cs)],
    );
    assert_eq!(status_of(&api, &v2), "Available");
    let d = api.ok("DescribePM", &[("Region", "r1"), ("PMIDs.0", &v2)]);
    assert_eq!(d["Infos"][0]["CompanyID"], 0);

    // Batch delete: one deletable, one allocated, one unknown, one malformed.
    let v = api.call(
        "DeletePMV2",
        &[
            ("Region", "r1"),
            ("PMIDs.0", &v2),
            ("PMIDs.1", &v1),
            ("PMIDs.2", "pm-000000000000"),
            ("PMIDs.3", "bogus"),
        ],
    );
    assert_err(&v, 1060, "deleted 1 of 4");
    let failed = v["Failed"].as_array().unwrap();
    assert_eq!(failed.len(), 3);
    assert_eq!(failed[0]["ID"], v1.as_str());
    assert_eq!(failed[0]["RetCode"], 1020);
    assert_eq!(failed[1]["RetCode"], 1010);
    assert_eq!(failed[2]["RetCode"], 230);
    assert_eq!(api.ok("ListPMV2", &[("Region", "r1")])["TotalCount"], 1);
    // Single-generation delete of a registered machine.
    let v3 = create(&api, &[]);
    api.ok("DeletePM", &[("Region", "r1"), ("PMID", &v3)]);
    assert_err(&api.call("DeletePM", &[("PMID", &v3)]), 1010, &v3);
}

#[test]
fn list_filters_sort_and_page() {
    let c = Controller::start();
    let api = c.admin();
    let (company, _) = tenant(&api, "Acme");
    let mut ids = Vec::new();
    for i in 0..12 {
        let ip = format!("127.0.1.{i}");
        let host = format!("host-{i:02}");
        let name = format!("Node {i:02}");
        let rack = (i % 3).to_string();
        let id = create(
            &api,
            &[
                ("IPMIIP", &ip),
                ("Hostname", &host),
                ("Name", &name),
                ("IP", &format!("203.0.113.{i}")),
                ("Tags.0.Key", "rack"),
                ("Tags.0.Value", &rack),
            ],
        );
        ids.push(id);
    }
    for id in &ids[..4] {
        api.ok("UpperPM", &[("Region", "r1"), ("PMID", id)]);
    }
    api.ok(
        "AllocatePM",
        &[
            ("Region", "r1"),
            ("PMID", &ids[0]),
            ("CompanyID", &company.to_string()),
            ("ProjectID", "p1"),
        ],
    );
    let total = |params: &[(&str, &str)]| {
        let mut p = vec![("Region", "r1")];
        p.extend_from_slice(params);
        api.ok("ListPMV2", &p)["TotalCount"].as_u64().unwrap()
    };
    assert_eq!(total(&[]), 12);
    assert_eq!(total(&[("Status", "available")]), 3);
    assert_eq!(total(&[("Status", "Registered")]), 8);
    assert_eq!(total(&[("Hostname", "HOST-05")]), 1);
    assert_eq!(total(&[("IP", "203.0.113.7")]), 1);
    assert_eq!(total(&[("IPMIIP", "127.0.1.7")]), 1);
    assert_eq!(total(&[("Tag", "rack=1")]), 4);
    assert_eq!(total(&[("Tag", "rack")]), 12);
    assert_eq!(total(&[("Keyword", "node 1")]), 2);
    assert_eq!(total(&[("Keyword", "node"), ("Status", "Registered")]), 8);
    assert_eq!(total(&[("CompanyID", &company.to_string())]), 1);
    assert_eq!(total(&[("ProjectIDs.0", "p1")]), 1);
    assert_eq!(total(&[("PMIDs.0", &ids[1]), ("PMIDs.1", &ids[2])]), 2);
    assert_eq!(total(&[("SN", "none")]), 0);
    assert_eq!(total(&[("Region", "r1")]), 12);
    assert_eq!(
        api.ok("ListPMV2", &[("Region", "elsewhere")])["TotalCount"],
        0
    );

    let page = api.ok(
        "ListPMV2",
        &[
            ("Region", "r1"),
            ("SortBy", "name"),
            ("SortOrder", "asc"),
            ("Limit", "5"),
            ("Offset", "5"),
        ],
    );
    let names: Vec<&str> = page["Infos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Node 05", "Node 06", "Node 07", "Node 08", "Node 09"]
    );
    assert_eq!(page["TotalCount"], 12);
    let d = api.ok(
        "DescribePM",
        &[("Region", "r1"), ("Keyword", "host-1"), ("Limit", "1")],
    );
    assert_eq!(d["TotalCount"], 2);
    assert_eq!(d["Infos"].as_array().unwrap().len(), 1);

    assert_err(
        &api.call("ListPMV2", &[("Region", "r1"), ("SortBy", "Color")]),
        230,
        "SortBy",
    );
    assert_err(
        &api.call("ListPMV2", &[("Region", "r1"), ("SortOrder", "up")]),
        230,
        "SortOrder",
    );
    assert_err(
        &api.call("ListPMV2", &[("Region", "r1"), ("Status", "gone")]),
        230,
        "Status",
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let c = Controller::start();
    let api = c.admin();
    let id = create(&api, &[("IPMIIP", "127.0.0.9")]);
    assert_err(&api.call("ListPMV2", &[]), 220, "Missing params [Region]");
    assert_err(&api.call("UpperPM", &[("Region", "r1")]), 220, "[PMID]");
    assert_err(
        &api.call("ListPMV2", &[("Region", "r1"), ("Limit", "ten")]),
        230,
        "[Limit]",
    );
    assert_err(
        &api.call("ListPMV2", &[("Region", "r1"), ("Limit", "0")]),
        230,
        "between 1 and 1000",
    );
    assert_err(
        &api.call("ListPMV2", &[("Region", "r1"), ("Limit", "100000")]),
        230,
        "[Limit]",
    );
    assert_err(
        &api.call("ListPMV2", &[("Region", "r1"), ("Offset", "-1")]),
        230,
        "[Offset]",
    );
    assert_err(
        &api.call("UpperPM", &[("Region", "r1"), ("PMID", "pm-1")]),
        230,
        "[PMID]",
    );
    assert_err(
        &api.call("ListPMV2", &[("Region", "r1"), ("PMIDs.0", "x")]),
        230,
        "[PMIDs.0]",
    );
    assert_err(
        &api.call("UpperPM", &[("Region", "r1"), ("PMID", "pm-0123456789ab")]),
        1010,
        "pm-0123456789ab",
    );
    assert_err(
        &api.call("ListPMV2", &[("Region", "bad region!")]),
        230,
        "[Region]",
    );
    assert_err(
        &api.call("CreatePMV2", &[("Region", "r1"), ("IPMIIP", "not-an-ip")]),
        230,
        "[IPMIIP]",
    );
    assert_err(
        &api.call("CreatePMV2", &[("Region", "r1"), ("IPMIIP", "127.0.0.9")]),
        1011,
        &id,
    );
    assert_err(
        &api.call("CreatePMV2", &[("Region", "r1"), ("Hostname", "-x")]),
        230,
        "[Hostname]",
    );
    assert_err(
        &api.call(
            "CreatePMV2",
            &[("Region", "r1"), ("Netmask", "255.0.255.0")],
        ),
        230,
        "[Netmask]",
    );
    assert_err(
        &api.call("CreatePMV2", &[("Region", "r1"), ("BMCTypeName", "ilo")]),
        230,
        "[BMCTypeName]",
    );
    assert_err(
        &api.call("CreatePMV2", &[("Region", "r1"), ("Tags.0.Value", "v")]),
        220,
        "[Tags.0.Key]",
    );
    assert_err(
        &api.call(
            "CreatePMV2",
            &[
                ("Region", "r1"),
                ("TargetCompanyID", "x"),
                ("CompanyID", "77"),
            ],
        ),
        230,
        "CompanyID",
    );
    assert_err(
        &api.call(
            "AllocatePM",
            &[("Region", "r1"), ("PMID", &id), ("CompanyID", "abc")],
        ),
        230,
        "[CompanyID]",
    );
    assert_err(
        &api.call(
            "SetIntrospectionSwitch",
            &[("Region", "r1"), ("IsOpen", "maybe")],
        ),
        230,
        "[IsOpen]",
    );
    assert_err(
        &api.call("ListPMV2", &[("Region", "r1"), ("PMIDs.99999999", "x")]),
        230,
        "PMIDs.99999999",
    );

    // A name twice with different values, in one form or across query and body.
    let mut form = b"Action=ListPMV2&Region=r1&Region=r2".to_vec();
    assert_err(
        &api.raw("application/x-www-form-urlencoded", form.clone()),
        230,
        "[Region]",
    );
    // Bodies over the limit, broken JSON, unsupported types.
    form.resize(1 << 21, b'a');
    assert_err(
        &api.raw("application/x-www-form-urlencoded", form),
        1001,
        "larger than",
    );
    assert_err(
        &api.raw("application/json", b"{\"Action\":".to_vec()),
        1002,
        "invalid JSON",
    );
    assert_err(
        &api.raw("application/json", b"[1]".to_vec()),
        1002,
        "object",
    );
    assert_err(
        &api.raw("multipart/form-data", b"--x".to_vec()),
        1002,
        "not supported",
    );
    assert_err(
        &api.raw("application/x-www-form-urlencoded", b"\xff\xfe=1".to_vec()),
        1002,
        "UTF-8",
    );

    // Parameters the action does not know are ignored (UCloud clients add their own).
    let v = api.ok(
        "ListPMV2",
        &[("Region", "r1"), ("ProjectId", "x"), ("Zone", "z1")],
    );
    assert_eq!(v["TotalCount"], 1);
    // The controller is still up and answering after all of that.
    api.ok("ListPMV2", &[("Region", "r1")]);
}

#[test]
fn json_bodies_with_arrays_and_objects() {
    let c = Controller::start();
    let api = c.admin();
    let body = json!({
        "Action": "CreatePMV2",
        "Region": "r1",
        "IPMIIP": "127.0.0.20",
        "Tags": [{"Key": "rack", "Value": "9"}, {"Key": "row", "Value": "b"}],
        "PMTags": ["ssd", "gpu"],
        "ExpireTime": 1900000000,
    });
    let v = api.call_json(body.as_object().unwrap().clone());
    assert_eq!(v["RetCode"], 0, "{v}");
    let pmid = v["PMID"].as_str().unwrap().to_owned();
    let body = json!({"Action": "ListPMV2", "Region": "r1", "PMIDs": [pmid], "Limit": 10});
    let v = api.call_json(body.as_object().unwrap().clone());
    assert_eq!(v["RetCode"], 0, "{v}");
    assert_eq!(v["Infos"][0]["Tags"][1]["Value"], "b");
    assert_eq!(v["Infos"][0]["PMTags"], json!(["ssd", "gpu"]));
    let body = json!({"Action": "ListPMV2", "Region": "r1", "Limit": true});
    assert_err(
        &api.call_json(body.as_object().unwrap().clone()),
        230,
        "[Limit]",
    );
}

#[test]
fn tenants_see_only_their_own_machines() {
    let c = Controller::start();
    let admin = c.admin();
    let (acme, acme_key) = tenant(&admin, "Acme");
    let (_globex, globex_key) = tenant(&admin, "Globex");
    let mine = create(
        &admin,
        &[
            ("IPMIIP", "127.0.2.1"),
            ("IPMIPassword", "bmc-pw"),
            ("CompanyID", &acme.to_string()),
        ],
    );
    let pool = create(&admin, &[("IPMIIP", "127.0.2.2")]);

    let v = acme_key.ok("ListPMV2", &[("Region", "r1")]);
    assert_eq!(v["TotalCount"], 1);
    assert_eq!(v["Infos"][0]["PMID"], mine.as_str());
    assert_eq!(
        v["Infos"][0]["IPMIPassword"], "",
        "tenants never see BMC passwords"
    );
    let v = acme_key.ok("DescribePM", &[("Region", "r1"), ("PMIDs.0", &mine)]);
    assert_eq!(v["Infos"][0]["IPMIPassword"], "");
    assert_eq!(
        globex_key.ok("ListPMV2", &[("Region", "r1")])["TotalCount"],
        0
    );
    assert_eq!(
        globex_key.ok("DescribePM", &[("Region", "r1"), ("PMIDs.0", &mine)])["TotalCount"],
        0
    );
    // Another tenant's machine does not exist for them; the pool neither.
    assert_err(
        &globex_key.call(
            "UpdatePMV2",
            &[("Region", "r1"), ("PMID", &mine), ("Name", "x")],
        ),
        1010,
        &mine,
    );
    assert_err(
        &acme_key.call(
            "UpdatePMV2",
            &[("Region", "r1"), ("PMID", &pool), ("Name", "x")],
        ),
        1010,
        &pool,
    );
    // Tenants may rename their machine but not touch its BMC.
    acme_key.ok(
        "UpdatePMV2",
        &[("Region", "r1"), ("PMID", &mine), ("Name", "mine")],
    );
    assert_err(
        &acme_key.call(
            "UpdatePMV2",
            &[("Region", "r1"), ("PMID", &mine), ("IPMIPassword", "x")],
        ),
        1030,
        "IPMIPassword",
    );
    // Admin-only actions and other tenants' CompanyID are forbidden.
    assert_err(
        &acme_key.call("CreatePMV2", &[("Region", "r1")]),
        1030,
        "admin key",
    );
    assert_err(
        &acme_key.call("DeletePMV2", &[("Region", "r1"), ("PMIDs.0", &mine)]),
        1030,
        "admin key",
    );
    assert_err(&acme_key.call("ListTenants", &[]), 1030, "admin key");
    assert_err(
        &acme_key.call("ListPMV2", &[("Region", "r1"), ("CompanyID", "1")]),
        1030,
        "CompanyID",
    );
    // The admin still sees everything, password included.
    let v = admin.ok("ListPMV2", &[("Region", "r1"), ("PMIDs.0", &mine)]);
    assert_eq!(v["Infos"][0]["IPMIPassword"], "bmc-pw");
    assert_eq!(v["Infos"][0]["Name"], "mine");
}

#[test]
fn tenants_and_keys_are_managed_by_admins() {
    let c = Controller::start();
    let admin = c.admin();
    let (acme, acme_key) = tenant(&admin, "Acme");
    let v = admin.ok("ListTenants", &[]);
    assert_eq!(v["TotalCount"], 1);
    assert_eq!(v["Infos"][0]["CompanyName"], "Acme");
    assert_err(
        &admin.call(
            "CreateTenant",
            &[("CompanyName", "Dup"), ("CompanyID", &acme.to_string())],
        ),
        1011,
        "already exists",
    );
    assert_err(&admin.call("CreateTenant", &[]), 220, "[CompanyName]");
    assert_err(
        &admin.call("CreateTenant", &[("CompanyName", "X"), ("Email", "nope")]),
        230,
        "[Email]",
    );
    admin.ok(
        "UpdateTenant",
        &[
            ("CompanyID", &acme.to_string()),
            ("Email", "ops@acme.example"),
        ],
    );
    assert_err(
        &admin.call("UpdateTenant", &[("CompanyID", "999")]),
        1010,
        "999",
    );
    let pm = create(&admin, &[("CompanyID", &acme.to_string())]);
    assert_err(
        &admin.call("DeleteTenant", &[("CompanyID", &acme.to_string())]),
        1031,
        "1 machine(s)",
    );
    admin.ok(
        "RecyclePM",
        &[
            ("Region", "r1"),
            ("PMID", &pm),
            ("CompanyID", &acme.to_string()),
        ],
    );
    let keys = admin.ok("ListAPIKeys", &[("CompanyID", &acme.to_string())]);
    assert_eq!(keys["TotalCount"], 1);
    assert!(keys["Infos"][0].get("PrivateKey").is_none());
    admin.ok("DeleteAPIKey", &[("KeyPublicKey", &acme_key.public_key)]);
    assert_err(
        &acme_key.call("ListPMV2", &[("Region", "r1")]),
        172,
        &acme_key.public_key,
    );
    admin.ok("DeleteTenant", &[("CompanyID", &acme.to_string())]);
    // The last admin key cannot be deleted; a second one can replace it.
    assert_err(
        &admin.call("DeleteAPIKey", &[("KeyPublicKey", &admin.public_key)]),
        1031,
        "last admin key",
    );
    assert_err(&admin.call("CreateAPIKey", &[]), 220, "[CompanyID]");
    let k = admin.ok("CreateAPIKey", &[("Admin", "true")]);
    let admin2 = Api::new(
        &admin.endpoint,
        k["PublicKey"].as_str().unwrap(),
        k["PrivateKey"].as_str().unwrap(),
    );
    admin2.ok("DeleteAPIKey", &[("KeyPublicKey", &admin.public_key)]);
    admin2.ok("ListPMV2", &[("Region", "r1")]);
}

#[test]
fn introspection_switch_per_region() {
    let c = Controller::start();
    let api = c.admin();
    assert_eq!(
        api.ok("GetIntrospectionSwitch", &[("Region", "r1")])["IsOpen"],
        false
    );
    api.ok(
        "SetIntrospectionSwitch",
        &[("Region", "r1"), ("IsOpen", "true")],
    );
    assert_eq!(
        api.ok("GetIntrospectionSwitch", &[("Region", "r1")])["IsOpen"],
        true
    );
    assert_eq!(
        api.ok("GetIntrospectionSwitch", &[("Region", "r2")])["IsOpen"],
        false
    );
    assert_err(&api.call("GetIntrospectionSwitch", &[]), 220, "[Region]");
}

#[test]
fn install_network_per_region() {
    let c = Controller::start();
    let api = c.admin();
    assert_err(
        &api.call("GetPhysicsVPCSubnet", &[("Region", "r1")]),
        1010,
        "r1",
    );
    api.ok(
        "SetPhysicsVPCSubnet",
        &[
            ("Region", "r1"),
            ("VLANID", "100"),
            ("Network", "198.51.100.0/24"),
            ("StartIP", "198.51.100.50"),
            ("EndIP", "198.51.100.99"),
        ],
    );
    let v = api.ok("GetPhysicsVPCSubnet", &[("Region", "r1")]);
    assert_eq!(v["Info"]["Network"], "198.51.100.0/24");
    assert_eq!(v["Info"]["StartIP"], "198.51.100.50");
    assert_eq!(v["Info"]["EndIP"], "198.51.100.99");
    assert_eq!(v["Info"]["VLANID"], 100);
    assert_eq!(v["Info"]["PhysicsSubnets"][0]["Network"], "198.51.100.0/24");
    // Without a range, the whole usable network.
    api.ok(
        "SetPhysicsVPCSubnet",
        &[("Region", "r2"), ("Network", "203.0.113.0/28")],
    );
    let v = api.ok("GetPhysicsVPCSubnet", &[("Region", "r2")]);
    assert_eq!(v["Info"]["StartIP"], "203.0.113.1");
    assert_eq!(v["Info"]["EndIP"], "203.0.113.14");

    let set = |extra: &[(&str, &str)]| {
        let mut p = vec![("Region", "r1")];
        p.extend_from_slice(extra);
        api.call("SetPhysicsVPCSubnet", &p)
    };
    assert_err(&set(&[]), 220, "[Network]");
    assert_err(&set(&[("Network", "not-a-net")]), 230, "[Network]");
    assert_err(
        &set(&[("Network", "198.51.100.7/24")]),
        230,
        "did you mean 198.51.100.0/24",
    );
    assert_err(&set(&[("Network", "2001:db8::/64")]), 230, "[Network]");
    assert_err(
        &set(&[("Network", "198.51.100.0/24"), ("StartIP", "198.51.101.5")]),
        230,
        "[StartIP]",
    );
    assert_err(
        &set(&[("Network", "198.51.100.0/24"), ("EndIP", "198.51.100.255")]),
        230,
        "[EndIP]",
    );
    assert_err(
        &set(&[
            ("Network", "198.51.100.0/24"),
            ("StartIP", "198.51.100.90"),
            ("EndIP", "198.51.100.10"),
        ]),
        230,
        "comes after EndIP",
    );
    assert_err(
        &set(&[("Network", "198.51.100.0/24"), ("VLANID", "5000")]),
        230,
        "[VLANID]",
    );
    // The refused sets changed nothing.
    assert_eq!(
        api.ok("GetPhysicsVPCSubnet", &[("Region", "r1")])["Info"]["StartIP"],
        "198.51.100.50"
    );
}
