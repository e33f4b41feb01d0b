"""The real UCloud Python SDK (ucloud-sdk-python3) drives a real ironrack controller.

The SDK signs and form-encodes requests itself (PMIDs.0, Tags.0.Key, ...),
so these tests prove the wire conventions, not our own client.
"""

import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time

import pytest
from ucloud.core import exc
from ucloud.core.client import Client

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("IRONRACK_BIN_DIR", ROOT / "target" / "debug"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def controller():
    exe = BIN / "ironrack-controller"
    assert exe.exists(), f"{exe} missing: run cargo build --workspace --bins"
    tmp = tempfile.TemporaryDirectory()
    port = free_port()
    log = open(os.path.join(tmp.name, "controller.log"), "w")
    proc = subprocess.Popen(
        [
            str(exe),
            "--data-dir",
            os.path.join(tmp.name, "data"),
            "--listen",
            f"127.0.0.1:{port}",
            "--tunnel-listen",
            "127.0.0.1:0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    creds = json.load(open(os.path.join(tmp.name, "data", "admin-credentials.json")))
    yield creds
    proc.kill()
    proc.wait()
    tmp.cleanup()


def client(creds, public_key=None, private_key=None):
    return Client(
        {
            "region": "r1",
            "public_key": public_key or creds["PublicKey"],
            "private_key": private_key or creds["PrivateKey"],
            "base_url": creds["Endpoint"],
            "max_retries": 0,
        }
    )


def test_create_list_update_delete_with_the_sdk(controller):
    c = client(controller)
    tenant = c.invoke("CreateTenant", {"CompanyName": "Acme"})
    company = tenant["CompanyID"]
    created = []
    for i in range(3):
        r = c.invoke(
            "CreatePMV2",
            {
                "IPMIIP": f"127.0.3.{i}",
                "IPMIUsername": "admin",
                "IPMIPassword": "pw",
                "Name": f"sdk-{i}",
                "Tags": [{"Key": "rack", "Value": str(i % 2)}],
                "PMTags": ["sdk"],
                "ExpireTime": 1900000000,
            },
        )
        assert r["RetCode"] == 0
        created.append(r["PMID"])

    listed = c.invoke("ListPMV2", {"PMIDs": created[:2], "Limit": 10})
    assert listed["TotalCount"] == 2
    assert {m["PMID"] for m in listed["Infos"]} == set(created[:2])
    assert c.invoke("ListPMV2", {"Tag": "rack=1"})["TotalCount"] == 1
    assert c.invoke("ListPMV2", {"Tag": "sdk"})["TotalCount"] == 3

    c.invoke("UpdatePMV2", {"PMID": created[0], "Name": "renamed", "RackLocation": "row-b"})
    info = c.invoke("DescribePM", {"PMIDs": [created[0]]})["Infos"][0]
    assert info["Name"] == "renamed"
    assert info["RackLocation"] == "row-b"
    assert info["Tags"] == [{"Key": "rack", "Value": "0"}]

    c.invoke("UpperPM", {"PMID": created[1]})
    c.invoke("AllocatePM", {"PMID": created[1], "CompanyID": company})
    key = c.invoke("CreateAPIKey", {"CompanyID": company})
    tenant_client = client(controller, key["PublicKey"], key["PrivateKey"])
    mine = tenant_client.invoke("ListPMV2", {})
    assert [m["PMID"] for m in mine["Infos"]] == [created[1]]
    assert mine["Infos"][0]["IPMIPassword"] == ""

    with pytest.raises(exc.RetCodeException) as e:
        c.invoke("DeletePMV2", {"PMIDs": created})
    assert e.value.code == 1060
    assert created[1] in e.value.message
    # Each id is deleted on its own: the two free machines are gone already.
    assert c.invoke("ListPMV2", {})["TotalCount"] == 1
    c.invoke("RecyclePM", {"PMID": created[1], "CompanyID": company})
    r = c.invoke("DeletePMV2", {"PMIDs": [created[1]]})
    assert r["RetCode"] == 0
    assert c.invoke("ListPMV2", {})["TotalCount"] == 0


def test_sdk_sees_clear_errors(controller):
    c = client(controller)
    with pytest.raises(exc.RetCodeException) as e:
        c.invoke("UpperPM", {})
    assert e.value.code == 220
    assert "PMID" in e.value.message
    with pytest.raises(exc.RetCodeException) as e:
        c.invoke("ListPMV2", {"Limit": 0})
    assert e.value.code == 230
    assert not e.value.retryable
    bad = client(controller, private_key="0" * 40)
    with pytest.raises(exc.RetCodeException) as e:
        bad.invoke("ListPMV2", {})
    assert e.value.code == 171
