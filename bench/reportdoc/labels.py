"""The report's words, in one table: Chinese (the default) and English.

The vocabulary is the assessors' (标称算力 nominal, 实测算力 measured, 算力达成率 attainment,
理论算效 / 实测算效 nominal / measured efficiency); the shared terms come from
``icb_bench.verify.report.LABELS`` so the report and `bench verify` never disagree.
"""

from __future__ import annotations

from icb_bench.verify.report import LABELS as VERIFY_LABELS

#: key -> (中文, English); keys of verify's table are reused as they are
LABELS: dict[str, tuple[str, str]] = {
    **VERIFY_LABELS,
    "report_title": ("工业智算基地算力评估报告", "Compute assessment report of an industrial intelligent-computing base"),
    "generated": ("生成时间", "Generated"),
    "runs": ("测试记录", "Run records"),
    "verdict": ("认定结论", "Verdict"),
    "no_declaration": ("未提供申报材料（--declared）：本报告仅列出实测证据，不作认定结论。",
                       "No declaration given (--declared): measured evidence only, no verdict."),
    "certified_yes": ("达标", "CERTIFIED"),
    "certified_no": ("未达标", "NOT CERTIFIED"),
    "all_confirmed": ("申报值全部经实测确认", "every declared claim confirmed by measurement"),
    "not_all_confirmed": ("存在未经实测确认的申报值", "some declared claims are not confirmed"),
    "scores": ("评分", "Scores"),
    "score_part": ("分项", "Part"),
    "score": ("得分", "Score"),
    "indicators": ("指标明细", "Indicators"),
    "declared_vs_measured": ("申报与实测对照", "Declared against measured"),
    "uncertainty": ("不确定度区间", "Uncertainty interval"),
    "reason": ("原因", "Reason"),
    "materials7": ("证明材料（表1 序号7）：存储能力和算力峰值", "Evidence (Table 1 row 7): storage capacity and compute peak"),
    "materials9": ("证明材料（表1 序号9）：国产智能算力占比", "Evidence (Table 1 row 9): domestic share of AI compute"),
    "storage": ("存储能力", "Storage capacity"),
    "storage_note": ("存储能力为申报值，本工具不测量存储。", "Storage capacity is as declared; icb-bench does not measure storage."),
    "compute_peak": ("FP16 算力峰值", "FP16 compute peak"),
    "domestic_share": ("国产智能算力占比", "Domestic share of AI compute"),
    "domestic_basis": ("按型号规格峰值（FP16 稠密）× 数量，依厂商计", "datasheet FP16 dense peak × count, by vendor"),
    "per_device": ("单卡实测算力", "Per-device throughput"),
    "host": ("节点", "Node"),
    "device": ("设备", "Device"),
    "precision": ("精度", "Precision"),
    "shape": ("矩阵形状", "GEMM shape"),
    "grade": ("等级", "Grade"),
    "power": ("功率", "Power"),
    "state": ("状态", "State"),
    "outliers": ("离群设备", "Outliers"),
    "none": ("无", "none"),
    "per_node": ("单节点汇总", "Per node"),
    "per_rack": ("单机架汇总", "Per rack"),
    "rack": ("机架", "Rack"),
    "devices_valid": ("有效/应测设备", "Valid/expected devices"),
    "window": ("测量窗口", "Window"),
    "traces": ("功率曲线（核心阶段）", "Power traces (core phase)"),
    "trace_note": ("阴影为计量窗口；时钟与温度同一时间轴。", "Shaded: the measurement window; clocks and temperature on the same time axis."),
    "traces_omitted": ("另有 {n} 条曲线未绘出（见记录中的 traces/）。", "{n} more traces not drawn (see traces/ in the record)."),
    "time_s": ("时间 (s)", "time (s)"),
    "power_w": ("功率 (W)", "power (W)"),
    "clock_mhz": ("SM 时钟 (MHz)", "SM clock (MHz)"),
    "temp_c": ("温度 (°C)", "temperature (°C)"),
    "environment": ("环境指纹与完整性", "Environment fingerprint and integrity"),
    "run_id": ("记录编号", "Run ID"),
    "status_run": ("记录状态", "Record status"),
    "tool": ("工具", "Tool"),
    "os": ("操作系统", "OS"),
    "cpu": ("处理器", "CPU"),
    "software": ("软件版本", "Software"),
    "plan_cfg": ("测试配置", "Plan"),
    "driver": ("驱动/运行时", "Driver/runtime"),
    "files_ok": ("文件校验", "File digests"),
    "signature": ("签名", "Signature"),
    "audit": ("审计", "Audit"),
    "nonce": ("抽样随机数", "Sampling nonce"),
    "absent": ("记录中无", "not in the record"),
    "not_checked": ("存在，本报告未校验", "present, not checked by this report"),
    "smoke_note": ("冒烟测试（等级 smoke）的数据不计入认定。", "Smoke-grade figures never count in a verdict."),
    "peak_fraction_chart": ("算力达成率（实测 ÷ 规格峰值）", "Attainment (measured ÷ datasheet peak)"),
    "claims_chart": ("申报值与核验值（误差线为区间）", "Declared and verified figures (bars: interval)"),
    "rack_chart": ("单机架实测算效（误差线为不确定度）", "Per-rack measured efficiency (bars: uncertainty)"),
    "requirement_line": ("指标要求", "requirement"),
    "font_fallback": ("未找到中文字体，图中标注改用英文（{hint}）。", "No CJK font found: plot labels are in English ({hint})."),
    "not_measured": ("未测", "not measured"),
    "model_table": ("分型号 FP16 算力", "FP16 compute by model"),
    "site_table": ("基地 FP16 算力规模", "Site FP16 compute"),
    "nominal_eff_note": ("理论算效 = 规格峰值 ÷ 功率上限；实测算效 = 实测算力 ÷ 窗口平均功率。",
                         "Nominal efficiency = datasheet peak ÷ power limit; measured = measured throughput ÷ mean power over the window."),
    "inventory_measured": ("实测设备清单（按型号）", "Measured devices by model"),
}


class Words:
    """Labels in one language: ``w("nominal")`` → 标称算力 (zh) or nominal (en)."""

    def __init__(self, lang: str):
        if lang not in ("zh", "en"):
            raise ValueError(f"{lang!r} is not a report language; expected zh or en")
        self.lang = lang

    def __call__(self, key: str, **fmt: object) -> str:
        zh, en = LABELS.get(key, (key, key))
        text = zh if self.lang == "zh" else en
        return text.format(**fmt) if fmt else text

    def source(self, source: str | None) -> str:
        """申报 / 标称 / 实测 for an indicator's or claim's source."""
        key = {"declared": "declared", "nominal": "nominal_src", "measured": "measured_src"}.get(source or "", "")
        return self(key) if key else (source or "—")
