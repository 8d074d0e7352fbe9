"""`bench report`: the assessor's report from golden records — sections, verdict, numbers, files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icb_bench.bench.cli import app
from icb_bench.bench.reportdoc import ReportError, ReportInput, build_report, write_report
from icb_bench.bench.reportdoc.fonts import find_cjk_font
from icb_bench.bench.reportdoc.labels import Words
from icb_bench.bench.reportdoc.plots import GlyphError, Plotter, missing_glyphs
from icb_bench.bench.reportdoc.render import render_html
from report_records import DECLARATION, GOLDEN_CPU, H100_REF, copy_record, fleet_record

INDICATORS = [f"A1.{i}" for i in range(1, 11)] + [f"A2.{i}" for i in range(1, 16)] + [f"A3.{i}" for i in range(1, 5)]


@pytest.fixture(scope="module")
def verified_html() -> str:
    rep = build_report(ReportInput(runs=[H100_REF], declared=DECLARATION))
    return render_html(rep)


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]+"', "", html))


def test_verdict_comes_first_and_every_indicator_is_scored(verified_html):
    text = _text(verified_html)
    # the example declares 1100 PFLOPS; one measured H100 cannot confirm it: mandatory A2.7 unmet
    assert text.index("达标认定：未达标") < text.index("评分") < text.index("申报与实测对照")
    assert "A = 97.00" in text and "必备项均满足: 否 — A2.7" in text
    for ind in INDICATORS:
        assert re.search(rf">{re.escape(ind)}<", verified_html), ind
    assert "A2.7 FP16算力峰值" in text and "无法判定" in text and "已确认" in text  # A2.7 inconclusive, A2.14 confirmed
    for src in ("申报", "标称"):
        assert f">{src}<" in verified_html


def test_numbers_carry_their_precision(verified_html):
    text = _text(verified_html)
    # the reference H100 record: fp16 647.7 TFLOPS of a 989 datasheet peak, fp32 52.6 of 67
    assert "647.7 TFLOPS (FP16)" in text and "989.0 TFLOPS (FP16)" in text and "65.5%" in text
    assert "52.6 TFLOPS (FP32)" in text and "78.4%" in text
    assert "927.7 GFLOPS/W (FP16)" in text  # 实测算效
    assert "1,412.9 GFLOPS/W (FP16)" in text  # 理论算效 = 989 TFLOPS / 700 W
    assert "73.3%" in text and "72.0%" in text  # domestic share recomputed vs declared
    assert "1,100.00 PFLOPS (FP16)" in text
    for word in ("标称算力", "实测算力", "算力达成率", "理论算效", "实测算效"):
        assert word in text


def test_evidence_rows_of_the_materials_list(verified_html):
    text = _text(verified_html)
    assert "证明材料（表1 序号7）：存储能力和算力峰值" in text and "12.00 PB" in text
    assert "证明材料（表1 序号9）：国产智能算力占比" in text


def test_self_contained_page(verified_html):
    srcs = re.findall(r'(?:src|href)="([^"]+)"', verified_html)
    assert srcs and all(s.startswith(("data:image/png;base64,", "#")) for s in srcs), srcs
    assert "<script" not in verified_html and "http://" not in verified_html and "https://" not in verified_html
    # charts: the claims, the attainment per device, a trace per core phase (fp16, fp32)
    assert verified_html.count("<img ") == 4


def test_without_a_declaration_no_verdict_and_small_figures_are_not_zero():
    rep = build_report(ReportInput(runs=[GOLDEN_CPU]))
    assert rep.verdict.certified is None and "不作认定结论" in rep.verdict.headline
    text = _text(render_html(rep))
    # the CPU golden run: 0.00089 TFLOPS fp16 (printed in GFLOPS) and 0.181 fp32 — never "0.0 TFLOPS"
    assert "0.89 GFLOPS (FP16)" in text and "0.181 TFLOPS (FP32)" in text
    assert "0.0 TFLOPS" not in text
    assert "smoke" in text and "冒烟测试" in text
    assert "RAPL" in text  # why power was not measured is shown beside the trace


def test_fleet_record_shows_racks_and_nodes(tmp_path):
    run = fleet_record(tmp_path, {"R01": 130.0, "R02": 90.0})
    rep = build_report(ReportInput(runs=[run]))
    html = render_html(rep)
    text = _text(html)
    assert "单机架汇总" in text and "R01" in text and "R02" in text
    assert "130.0 GFLOPS/W (FP16)" in text and "[128.7, 131.3]" in text and "rack-meter" in text
    scopes = next(s for s in rep.sections if s.id == "scopes")
    assert [f.key for f in scopes.figures] == ["racks"]
    traces = next(s for s in rep.sections if s.id == "traces")
    assert len(traces.figures) == 4  # 2 racks × 2 devices, each with its trace in its node's shard
    assert "sha256 ok" in text and "mismatch" not in text


def test_integrity_and_signature_status(tmp_path):
    from icb_bench.bench.sign import keygen, load_private_key, sign_record

    run = copy_record(GOLDEN_CPU, tmp_path / "r")
    # a signature that is only a file with the right name does not hold
    (run / "signature.json").write_text(json.dumps({"algorithm": "ed25519", "key_id": "abc123"}), encoding="utf-8")
    text = _text(render_html(build_report(ReportInput(runs=[run]))))
    assert "4/4 sha256 ok" in text and "✘" in text
    # a real one: the signer and its key are named, and it holds
    (run / "signature.json").unlink()
    key = keygen(tmp_path / "k.key")
    sign_record(run, load_private_key(key.private_path), signer="assessor-01")
    text = _text(render_html(build_report(ReportInput(runs=[run]))))
    assert f"assessor-01 · {key.fingerprint} · ✔" in text
    (run / "signature.json").unlink()
    meas = run / "measurements" / "vm-d0-fp16.json"
    meas.write_text(meas.read_text(encoding="utf-8").replace('"seed": 0', '"seed": 1'), encoding="utf-8")
    text = _text(render_html(build_report(ReportInput(runs=[run]))))
    assert "1/4 mismatch: measurements/vm-d0-fp16.json" in text


def test_english_report():
    rep = build_report(ReportInput(runs=[H100_REF], declared=DECLARATION, lang="en"))
    text = _text(render_html(rep))
    assert "NOT CERTIFIED" in text and "Declared against measured" in text and "attainment" in text
    assert "达标认定" not in text


def test_markdown_writes_images_beside_it(tmp_path):
    rep = build_report(ReportInput(runs=[H100_REF], declared=DECLARATION))
    files = write_report(rep, tmp_path / "r.md", "md")
    md = files[0].read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 4 and all((tmp_path / link).is_file() for link in links)
    assert (tmp_path / links[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| A2.7 |" in md and "达标认定：未达标" in md


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(ReportError, match="no such record directory"):
        build_report(ReportInput(runs=[tmp_path / "nope"]))
    with pytest.raises(ReportError, match="--lang: 'fr'"):
        build_report(ReportInput(runs=[GOLDEN_CPU], lang="fr"))
    bad = tmp_path / "decl.yaml"
    bad.write_text("schema: icb-declaration/1\nspec: icb-eval/2024\nbase: {name: x, tier: moon}\n", encoding="utf-8")
    with pytest.raises(ReportError, match="--declared: .*tier"):
        build_report(ReportInput(runs=[GOLDEN_CPU], declared=bad))


def test_cli_report(tmp_path):
    r = CliRunner().invoke(app, ["report", str(H100_REF), "--declared", str(DECLARATION), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    assert "未达标" in r.output and (tmp_path / "r.html").stat().st_size > 10_000
    r = CliRunner().invoke(app, ["report", str(tmp_path / "missing"), "-o", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and r.output.startswith("error:")
    r = CliRunner().invoke(app, ["report", str(GOLDEN_CPU), "-q", "-o", str(tmp_path / "q.html")])
    assert r.exit_code == 0 and r.output == ""


def test_cjk_font_found_and_checked():
    font = find_cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (apt-get install -y fonts-noto-cjk)")
    assert "CJK" in font.family or "Han" in font.family or "Hei" in font.family


def test_a_label_without_a_font_is_caught_not_drawn_as_boxes():
    from matplotlib.figure import Figure
    import matplotlib

    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
        fig = Figure()
        fig.subplots().set_title("实测算力")
        assert missing_glyphs(fig) == set("实测算力")
        with pytest.raises(GlyphError):
            Plotter(Words("zh"), None).claims([{"id": "A2.7", "zh": "算力", "en": "x", "declared": 1, "figure": 1}])
    # no CJK font: English labels draw fine
    assert Plotter(Words("en"), None).claims([{"id": "A2.7", "zh": "算力", "en": "FP16 peak", "declared": 1, "figure": 1}])


def test_pdf_printed_by_headless_chromium(tmp_path):
    from icb_bench.bench.reportdoc.pdf import find_browser

    if find_browser() is None:
        pytest.skip("no chromium (apt-get install -y chromium)")
    rep = build_report(ReportInput(runs=[GOLDEN_CPU]))
    out = tmp_path / "r.pdf"
    write_report(rep, out, "pdf")
    assert out.read_bytes()[:5] == b"%PDF-"
