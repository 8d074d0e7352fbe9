"""A rack figure counts only on its own evidence: its energy recomputed from the recorded meter
readings, its nodes checked against the site file, its nodes' clock offsets bounded."""

from __future__ import annotations

import json

import pandas as pd

from icb_bench.bench.record import sha256_file
from icb_bench.verify.declaration import parse_declaration
from icb_bench.verify.measured import load_records, verify

from .conftest import RackSpec, example_dict, site_of, write_fleet

READINGS = "power/readings.parquet"
SPECS = {"R0": RackSpec(130.0), "R1": RackSpec(128.0)}


def _verify(tmp_path, site=None):
    return verify(parse_declaration(example_dict()), load_records([tmp_path]), site_file=site)


def _excluded(v, rack):
    return [e for e in v.excluded if f"aggregate rack {rack}:" in e]


def _scored(v):
    return sorted(r.rack_id for r in v.racks if r.scored)


def _reindex(run, rel=READINGS):
    """The file index made to agree with an edited file (what a careless signer would re-sign)."""
    man = json.loads((run / "manifest.json").read_text())
    for f in man["files"]:
        if f["path"] == rel:
            f["sha256"] = sha256_file(run / rel)
    (run / "manifest.json").write_text(json.dumps(man))


def test_untouched_records_count_and_their_energy_is_recomputed(tmp_path):
    write_fleet(tmp_path / "fleet", SPECS)
    assert _scored(_verify(tmp_path, site_of(SPECS))) == ["R0", "R1"]


def test_readings_edited_with_their_digest_updated_do_not_count(tmp_path):
    run = write_fleet(tmp_path / "fleet", SPECS)
    df = pd.read_parquet(run / READINGS)
    df.loc[df["source_id"] == "pdu-R0-0", "power_w"] *= 0.9  # less energy: a better GFLOPS/W
    df.to_parquet(run / READINGS, index=False)
    _reindex(run)
    v = _verify(tmp_path, site_of(SPECS))
    why = " ".join(_excluded(v, "R0"))
    assert "energy_j" in why and "its meters' readings give over" in why
    assert _scored(v) == ["R1"]


def test_a_figure_whose_energy_disagrees_with_its_trace_does_not_count(tmp_path):
    write_fleet(tmp_path / "fleet", SPECS, power_w={"pdu-R1-0": 39_000.0})  # digests right, energy not
    v = _verify(tmp_path, site_of(SPECS))
    assert _scored(v) == ["R0"] and "is not the" in " ".join(_excluded(v, "R1"))


def test_readings_that_give_no_energy_do_not_count(tmp_path):
    run = write_fleet(tmp_path / "fleet", SPECS)
    df = pd.read_parquet(run / READINGS)
    df = df[(df["source_id"] != "pdu-R0-0") | (df["t_begin_s"] < 1050) | (df["t_begin_s"] > 1060)]  # a 10 s gap
    df.to_parquet(run / READINGS, index=False)
    _reindex(run)
    why = " ".join(_excluded(_verify(tmp_path, site_of(SPECS)), "R0"))
    assert "pdu-R0-0" in why and "give no energy over the window" in why


def test_a_meter_of_the_rack_left_out_of_the_figure_does_not_count(tmp_path):
    run = write_fleet(tmp_path / "fleet", SPECS)
    man = json.loads((run / "manifest.json").read_text())
    man["power"].append({**man["power"][0], "source_id": "pdu-R0-1"})  # the B feed, not summed
    (run / "manifest.json").write_text(json.dumps(man))
    why = " ".join(_excluded(_verify(tmp_path, site_of(SPECS)), "R0"))
    assert "leave out pdu-R0-1" in why


def test_a_rack_missing_a_node_of_the_site_file_does_not_count(tmp_path):
    write_fleet(tmp_path / "fleet", SPECS)
    v = _verify(tmp_path, site_of(SPECS, extra_nodes={"R0": ["n-R0-hot"]}))
    assert "leaves out node(s) n-R0-hot of rack 'R0'" in " ".join(_excluded(v, "R0"))
    assert _scored(v) == ["R1"]


def test_site_file_device_counts_and_racks_are_checked(tmp_path):
    write_fleet(tmp_path / "fleet", SPECS)
    v = _verify(tmp_path, site_of({"R0": RackSpec(130.0, devices=3)}))
    assert "site file gives it 3 device(s)" in " ".join(_excluded(v, "R0"))
    assert "rack 'R1' is not a rack of site file 'test-site'" in " ".join(_excluded(v, "R1"))


def test_without_a_site_file_racks_count_but_a17_is_not_confirmed(tmp_path):
    write_fleet(tmp_path / "fleet", SPECS)
    v = _verify(tmp_path)
    a17 = next(c for c in v.claims if c.id == "A1.7")
    assert _scored(v) == ["R0", "R1"]
    assert a17.status == "INCONCLUSIVE" and "not checked against a site file" in a17.reason


def test_a_clock_offset_with_a_large_round_trip_does_not_count(tmp_path):
    # n-R1 is rank 1: its offset is known to ± 1 s only, more than the 0.8 s timestamps may differ by
    write_fleet(tmp_path / "fleet", SPECS, clock={"n-R1": {"offset_s": 0.0, "rtt_s": 2.0, "rounds": 8}})
    v = _verify(tmp_path, site_of(SPECS))
    why = " ".join(_excluded(v, "R1"))
    assert "known to ± 1 s (half the best round trip)" in why and _scored(v) == ["R0"]


def test_a_clock_offset_without_a_round_trip_is_unbounded(tmp_path):
    write_fleet(tmp_path / "fleet", SPECS, clock={"n-R1": {"offset_s": 0.0}})
    v = _verify(tmp_path, site_of(SPECS))
    assert "has no round trip" in " ".join(_excluded(v, "R1")) and _scored(v) == ["R0"]


def test_a_small_round_trip_counts(tmp_path):
    write_fleet(tmp_path / "fleet", SPECS, clock={"n-R1": {"offset_s": 0.0, "rtt_s": 1.2, "rounds": 8}})
    assert _scored(_verify(tmp_path, site_of(SPECS))) == ["R0", "R1"]  # ± 0.6 s ≤ 0.8 s


def test_the_cyclic_collector_is_back_on_after_verify(tmp_path):
    import gc

    write_fleet(tmp_path / "fleet", SPECS)
    assert gc.isenabled()
    _verify(tmp_path, site_of(SPECS))
    assert gc.isenabled()


def test_a_polling_rate_claimed_below_the_rule_does_not_count(tmp_path):
    """A record saying its PDU was polled every 20 s would excuse a 10 s gap in the readings."""
    run = write_fleet(tmp_path / "fleet", SPECS)
    man = json.loads((run / "manifest.json").read_text())
    for p in man["power"]:
        p["poll_hz"] = 0.05 if p["source_id"] == "pdu-R0-0" else 2.0
    (run / "manifest.json").write_text(json.dumps(man))
    v = _verify(tmp_path, site_of(SPECS))
    assert _scored(v) == ["R1"] and "poll_hz 0.05 is not a rate in 1..100 Hz" in " ".join(_excluded(v, "R0"))
