"""The site file: strict models, every problem reported at once (one line each), safe YAML,
secrets only by reference, and the dispatch from a source to its power reader."""

from __future__ import annotations

import copy
import types
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from icb_bench.bench import site as S
from icb_bench.bench.site import SiteError, load_site, open_reader, parse_site, resolve_secret

EXAMPLE = Path(__file__).resolve().parents[2] / "bench" / "data" / "site.example.yaml"


def minimal() -> dict:
    return {
        "schema": "icb-bench/site/1",
        "site": "t",
        "racks": [
            {"name": "R01",
             "pdus": [{"type": "redfish", "url": "https://127.0.0.1:8443/redfish/v1/PowerEquipment/RackPDUs/1",
                       "password_env": "ICB_PDU_PASSWORD", "accuracy": "1%"}],
             "nodes": [{"name": "n1", "devices": {"model": "H100", "count": 8}}]},
        ],
    }


def errors(data, source="site.yaml") -> list[str]:
    with pytest.raises(SiteError) as exc:
        parse_site(data, source)
    lines = exc.value.render().splitlines()
    assert all(line.startswith(f"{source}: ") for line in lines)
    assert len(lines) == len(exc.value.issues)
    return lines


def test_example_loads():
    site = load_site(EXAMPLE)
    assert site.site == "示例工业智算基地" and site.level == 1
    assert site.models() == {"NVIDIA H100 80GB HBM3": 32, "Ascend 910B": 32}
    rack, node = site.node_index()["node05"]
    assert rack.name == "R03" and node.devices.count == 8
    assert [p.type for p in site.racks[0].pdus] == ["redfish", "redfish"]
    assert site.racks[0].nodes[1].bmc.type == "dcmi" and site.racks[0].nodes[1].bmc.port == 623
    assert site.racks[0].pdus[0].accuracy == Fraction(1, 100) and site.racks[0].pdus[0].accuracy_rel == 0.01
    assert site.base_dir == EXAMPLE.parent and len(site.sha256) == 64


@pytest.mark.parametrize("raw", ["1%", "0.01", 0.01, "1 %"])
def test_accuracy_forms(raw):
    d = minimal()
    d["racks"][0]["pdus"][0]["accuracy"] = raw
    assert parse_site(d).racks[0].pdus[0].accuracy == Fraction(1, 100)


@pytest.mark.parametrize("raw", ["150%", 0, "0%", "abc", True, 1])
def test_accuracy_refused(raw):
    d = minimal()
    d["racks"][0]["pdus"][0]["accuracy"] = raw
    (line,) = errors(d)
    assert line.startswith("site.yaml: racks[0].pdus[0].accuracy: ") and "meter accuracy" in line


def test_all_errors_at_once_each_one_line():
    d = minimal()
    r = d["racks"][0]
    r["nodes"][0]["devices"]["count"] = -1
    r["nodes"].append({"name": "n2", "devices": {"model": "H100", "count": True}, "bmc": {"type": "ipmi", "host": "b"}})
    r["pdus"].append({"type": "meter-log", "path": "a.csv", "acuracy": "1%"})
    d["racks"].append({"name": "R02", "nodes": []})
    d["level"] = 9
    lines = errors(d)
    assert "site.yaml: racks[0].nodes[0].devices.count: -1 — expected a whole number from 1 to 64" in lines
    assert any(ln.startswith("site.yaml: racks[0].nodes[1].devices.count: True — expected a whole number") for ln in lines)
    assert any(ln.startswith("site.yaml: racks[0].nodes[1].bmc.type: 'ipmi' — expected a type among: 'redfish', 'dcmi'") for ln in lines)
    assert any(ln.startswith("site.yaml: racks[0].pdus[1].acuracy: '1%' — expected no such field") for ln in lines)
    assert any(ln.startswith("site.yaml: racks[1].nodes: [] — expected at least one entry") for ln in lines)
    assert any(ln.startswith("site.yaml: level: 9 — expected a sampling level") for ln in lines)
    assert len(lines) == 6


def test_unique_names_across_site():
    d = minimal()
    d["racks"].append(copy.deepcopy(d["racks"][0]))  # same rack name and same node name
    d["racks"][0]["nodes"].append({"name": "n1", "devices": {"model": "H100", "count": 1}})
    lines = errors(d)
    assert "site.yaml: racks[1].name: 'R01' — expected a rack name not used before (racks[0] has it)" in lines
    assert "site.yaml: racks[0].nodes[1].name: 'n1' — expected a node name unique across the site (racks[0].nodes[0] has it)" in lines
    assert "site.yaml: racks[1].nodes[0].name: 'n1' — expected a node name unique across the site (racks[0].nodes[0] has it)" in lines
    assert len(lines) == 3


@pytest.mark.parametrize("where,key,value", [
    ("pdu", "password", "hunter2"),
    ("snmp", "community", "hunter2"),
    ("snmp3", "auth_key", "hunter2"),
    ("snmp3", "priv_key", "hunter2"),
    ("bmc", "password", "hunter2"),
    ("pdu", "passphrase", "hunter2"),  # an unknown key that looks like a secret is not echoed either
])
def test_literal_secret_refused_and_not_echoed(where, key, value):
    d = minimal()
    snmp = {"type": "snmp", "host": "127.0.0.1", "profile": "apc-rpdu2", "community_env": "C"}
    snmp3 = {"type": "snmp", "host": "127.0.0.1", "profile": "apc-rpdu2", "version": "3", "user": "u",
             "auth_protocol": "sha", "auth_key_env": "A", "priv_protocol": "aes", "priv_key_env": "P"}
    target = {"pdu": d["racks"][0]["pdus"][0], "snmp": snmp, "snmp3": snmp3,
              "bmc": {"type": "dcmi", "host": "127.0.0.1", "password_env": "B"}}[where]
    if where.startswith("snmp"):
        d["racks"][0]["pdus"].append(target)
    if where == "bmc":
        d["racks"][0]["nodes"][0]["bmc"] = target
    target[key] = value
    (line,) = errors(d)
    assert value not in line and "(value not shown)" in line and f".{key}: " in line


def test_password_in_url_refused_and_not_echoed():
    d = minimal()
    d["racks"][0]["pdus"][0]["url"] = "https://admin:hunter2@127.0.0.1/redfish/v1/PowerEquipment/RackPDUs/1"
    (line,) = errors(d)
    assert "hunter2" not in line and line.startswith("site.yaml: racks[0].pdus[0].url: (value not shown)")


@pytest.mark.parametrize("change,field,expected", [
    ({"password_file": "p.txt"}, "password_file", "only one of password_env and password_file"),
    ({"password_env": "1BAD"}, "password_env", "the name of an environment variable"),
    ({"url": "ftp://127.0.0.1/x"}, "url", "https://host[:port]"),
    ({"url": "https://127.0.0.1:99999/x"}, "url", "a URL"),
    ({"url": "https://127.0.0.1/x?delay=2"}, "url", "query parameters among"),
    ({"url": "https://127.0.0.1/x?delay_s=-1"}, "url", "delay_s= a finite, non-negative number"),
    ({"insecure": "yes"}, "insecure", "true or false"),
    ({"type": None}, "type", ""),
])
def test_redfish_source_errors(change, field, expected):
    d = minimal()
    d["racks"][0]["pdus"][0].update(change)
    (line,) = errors(d)
    assert line.startswith(f"site.yaml: racks[0].pdus[0]{'.' + field if field != 'type' else ''}") and expected in line


@pytest.mark.parametrize("change,field,expected", [
    ({"profile": "custom"}, "oid", "for profile 'custom'"),
    ({"profile": "custom", "oid": "1.3.6.1.2", }, "scale", "for profile 'custom'"),
    ({"oid": "1.3.6.1.2"}, "oid", "only for profile 'custom'"),
    ({"profile": "custom", "oid": "iso.3.6", "scale": 1}, "oid", "a numeric OID"),
    ({"profile": "custom", "oid": "1.3.6", "scale": 0}, "scale", "a positive number"),
    ({"community_env": None}, "community_env", "for SNMP v2c"),
    ({"user": "u"}, "user", "SNMP v3 field"),
    ({"version": "3", "community_env": None}, "user", "SNMP v3 user"),
    ({"version": "3", "user": "u"}, "community_env", "SNMP v2c and version is '3'"),
    ({"version": "3", "user": "u", "community_env": None, "auth_protocol": "SHA"}, "auth_protocol", "together with auth_key"),
    ({"version": "3", "user": "u", "community_env": None, "priv_protocol": "AES", "priv_key_env": "K"}, "priv_protocol",
     "SNMP v3 has no privacy without authentication"),
    ({"version": "3", "user": "u", "community_env": None, "auth_protocol": "RC4", "auth_key_env": "K"}, "auth_protocol", "one of MD5"),
    ({"version": 2}, "version", "'2c' or '3'"),
    ({"port": 0}, "port", "a whole number from 1 to 65535"),
    ({"profile": "eaton"}, "profile", "'apc-rpdu2', 'raritan-pdu2' or 'custom'"),
])
def test_snmp_source_errors(change, field, expected):
    d = minimal()
    snmp = {"type": "snmp", "host": "127.0.0.1", "profile": "apc-rpdu2", "community_env": "C"}
    snmp.update(change)
    d["racks"][0]["pdus"] = [snmp]
    (line,) = errors(d)
    assert line.startswith(f"site.yaml: racks[0].pdus[0].{field}: "), line
    assert expected in line, line


def test_snmp_v3_valid_and_normalised():
    d = minimal()
    d["racks"][0]["pdus"] = [{"type": "snmp", "host": "::1", "version": "3", "user": "u", "auth_protocol": "sha256",
                              "auth_key_env": "A", "priv_protocol": "aes", "priv_key_file": "k.txt", "profile": "raritan-pdu2"}]
    p = parse_site(d).racks[0].pdus[0]
    assert (p.auth_protocol, p.priv_protocol, p.port, p.index) == ("SHA256", "AES", 161, 1)
    assert p.secret("priv_key") == S.SecretRef("priv_key", None, "k.txt") and p.secret("community") is None


@pytest.mark.parametrize("data,expected", [
    ([], "(top level): 'list' — expected a mapping"),
    ({"schema": "icb-bench/site/2", "site": "t", "racks": [{"name": "R", "nodes": [{"name": "n", "devices": {"model": "m", "count": 1}}]}]},
     "schema: 'icb-bench/site/2' — expected 'icb-bench/site/1'"),
    ({"schema": "icb-bench/site/1", "site": "t"}, "racks: (missing) — expected a value (required field)"),
    ({"schema": "icb-bench/site/1", "site": " t", "racks": []}, "site: ' t' — expected a name of 1 to 200 characters"),
])
def test_top_level_errors(data, expected):
    assert any(expected in ln for ln in errors(data))


# ----------------------------------------------------------------------------- the YAML file


def write(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "site.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


def load_errors(p: Path) -> list[str]:
    with pytest.raises(SiteError) as exc:
        load_site(p)
    return exc.value.render().splitlines()


def test_load_reports_with_file_name(tmp_path):
    d = minimal()
    d["racks"][0]["nodes"][0]["devices"]["count"] = 0
    p = write(tmp_path, yaml.safe_dump(d, allow_unicode=True))
    assert load_errors(p) == [f"{p}: racks[0].nodes[0].devices.count: 0 — expected a whole number from 1 to 64"]


@pytest.mark.parametrize("text,expected", [
    ("a: &x [1, 2]\nb: *x\n", "aliases are refused"),
    ("site: !!python/object:os.system ls\n", "tags are refused"),
    ("site: !!str t\n", "tags are refused"),
    ("site: a\nsite: b\n", "duplicate key 'site'"),
    ("racks: [\n", "valid YAML"),
])
@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pure-python"])
def test_unsafe_or_broken_yaml_refused(tmp_path, monkeypatch, text, expected, libyaml):
    if not libyaml:
        monkeypatch.setattr(S, "_CSafeLoader", None)
    elif S._CSafeLoader is None:
        pytest.skip("PyYAML without libyaml")
    (line,) = load_errors(write(tmp_path, text))
    assert expected in line and line.startswith(f"{tmp_path / 'site.yaml'}: line "), line


def test_alias_bomb_refused_quickly(tmp_path):
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    (line,) = load_errors(write(tmp_path, bomb))
    assert "aliases are refused" in line


def test_large_file_refused_before_parsing(tmp_path):
    p = tmp_path / "site.yaml"
    with p.open("wb") as fh:
        fh.truncate(S.MAX_SITE_BYTES + 1)  # sparse: no 16 MiB written
    (line,) = load_errors(p)
    assert "at most 16 MiB" in line


def test_missing_and_binary_files(tmp_path):
    assert "an existing site file" in load_errors(tmp_path / "nope.yaml")[0]
    assert "UTF-8 text" in load_errors(write(tmp_path, b"site: \xff\xfe\n"))[0]
    assert "a readable file" in load_errors(tmp_path)[0]  # a directory


# ----------------------------------------------------------------------------- secrets


def test_resolve_secret(tmp_path):
    assert resolve_secret(None) is None
    assert resolve_secret(S.SecretRef("password", env="P"), env={"P": "s3cret"}) == "s3cret"
    (tmp_path / "pw.txt").write_text("s3cret\n")
    assert resolve_secret(S.SecretRef("password", file="pw.txt"), base_dir=tmp_path) == "s3cret"
    with pytest.raises(SiteError, match=r"password_env: 'P' — expected an environment variable that is set"):
        resolve_secret(S.SecretRef("password", env="P"), env={"P": ""})
    with pytest.raises(SiteError, match=r"password_file: .* — expected a readable UTF-8 file"):
        resolve_secret(S.SecretRef("password", file="none.txt"), base_dir=tmp_path)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(SiteError, match=r"expected a file holding the password"):
        resolve_secret(S.SecretRef("password", file="empty.txt"), base_dir=tmp_path)


# ----------------------------------------------------------------------------- readers


def test_open_reader_redfish_builds_unopened_reader(monkeypatch):
    from icb_bench.bench.power import redfish

    passed: dict = {}
    real = redfish.RedfishReader

    class Spy(real):  # records what the dispatch passes (the password is not a public attribute)
        def __init__(self, *args, **kwargs):
            passed.update(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(redfish, "RedfishReader", Spy)
    d = minimal()
    pdu = d["racks"][0]["pdus"][0]
    pdu.update(url=pdu["url"] + "?delay_s=2.5&timeout_s=3", insecure=True, username="admin")
    src = parse_site(d).racks[0].pdus[0]
    r = open_reader(src, "rack", env={"ICB_PDU_PASSWORD": "pw"})
    assert isinstance(r, real)
    assert (r.scope, r.base_url, r.resource, r.username, r.verify_tls, r.delay_s, r.timeout_s) == (
        "rack", "https://127.0.0.1:8443", "/redfish/v1/PowerEquipment/RackPDUs/1", "admin", False, 2.5, 3.0)
    assert passed == {"username": "admin", "password": "pw", "scope": "rack", "verify_tls": False, "delay_s": 2.5, "timeout_s": 3.0}


def test_open_reader_errors():
    src = parse_site(minimal()).racks[0].pdus[0]
    with pytest.raises(SiteError, match=r"^redfish https://127.0.0.1:8443/.*: password_env: 'ICB_PDU_PASSWORD' — expected an environment"):
        open_reader(src, "rack", env={})
    with pytest.raises(SiteError, match=r"scope: 'device' — expected rack or node"):
        open_reader(src, "device", env={"ICB_PDU_PASSWORD": "pw"})


def test_open_reader_meter_log_is_post_hoc():
    d = minimal()
    d["racks"][0]["pdus"] = [{"type": "meter-log", "path": "logs/r01.csv", "format": "ptdaemon", "accuracy": "0.5%"}]
    assert open_reader(parse_site(d).racks[0].pdus[0], "rack", env={}) is None


@dataclass
class _FakeSnmpTarget:
    host: str
    port: int
    version: str
    community: str | None
    user: str | None
    auth_protocol: str | None
    auth_key: str | None
    priv_protocol: str | None
    priv_key: str | None
    profile: str
    index: int
    oid: str | None
    scale: float | None
    accuracy_rel: float | None = None


@dataclass
class _FakeDcmiTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    interface: str


class _FakeReader:
    def __init__(self, target, scope):
        self.target, self.scope = target, scope


@pytest.fixture
def fake_power_modules(monkeypatch):
    """Stand-ins for bench/power/snmp.py and dcmi.py (written by others), with the contract's names."""
    snmp = types.ModuleType("icb_bench.bench.power.snmp")
    snmp.SnmpTarget, snmp.SnmpPduReader = _FakeSnmpTarget, _FakeReader
    dcmi = types.ModuleType("icb_bench.bench.power.dcmi")
    dcmi.DcmiTarget, dcmi.DcmiReader = _FakeDcmiTarget, _FakeReader
    monkeypatch.setitem(__import__("sys").modules, "icb_bench.bench.power.snmp", snmp)
    monkeypatch.setitem(__import__("sys").modules, "icb_bench.bench.power.dcmi", dcmi)


def test_open_reader_snmp_and_dcmi_dispatch(fake_power_modules, tmp_path):
    site = load_site(EXAMPLE)
    v3 = site.racks[2].pdus[0]
    r = open_reader(v3, "rack", env={"ICB_SNMP_AUTH_KEY": "ak", "ICB_SNMP_PRIV_KEY": "pk"})
    assert r.scope == "rack" and r.target == _FakeSnmpTarget(
        host="::1", port=1161, version="3", community=None, user="icb-assessor", auth_protocol="SHA256", auth_key="ak",
        priv_protocol="AES", priv_key="pk", profile="custom", index=1, oid="1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.5",
        scale=1.0, accuracy_rel=0.01)
    v2 = open_reader(site.racks[1].pdus[0], "rack", env={"ICB_SNMP_COMMUNITY": "public"})
    assert v2.target.community == "public" and v2.target.profile == "apc-rpdu2"
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "bmc-node02.txt").write_text("bmcpw\n")
    bmc = site.racks[0].nodes[1].bmc
    d = open_reader(bmc, "node", base_dir=tmp_path, env={})
    assert d.scope == "node" and d.target == _FakeDcmiTarget("127.0.0.1", 623, "admin", "bmcpw", "lanplus")
    with pytest.raises(SiteError, match="scope: 'rack' — expected node"):
        open_reader(bmc, "rack", base_dir=tmp_path, env={})


def test_open_reader_translates_a_target_that_lacks_a_field(fake_power_modules, monkeypatch):
    import sys

    @dataclass
    class Narrow:
        host: str

    monkeypatch.setattr(sys.modules["icb_bench.bench.power.snmp"], "SnmpTarget", Narrow)
    src = load_site(EXAMPLE).racks[1].pdus[0]
    with pytest.raises(SiteError, match=r"^snmp 127.0.0.1:1161 apc-rpdu2#1: \(reader\): .*options the snmp reader accepts"):
        open_reader(src, "rack", env={"ICB_SNMP_COMMUNITY": "public"})
