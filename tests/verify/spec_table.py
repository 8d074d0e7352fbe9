"""The specification's thresholds transcribed independently of the rules file (from scoring.md).

The scoring tests generate declarations from this table, so a typo in ``rules/icb-eval-2024.yaml``
shows up as a failing test rather than a silently different threshold.
"""

TIERS = ("economic_region", "hub", "provincial", "municipal", "industry")


def per_tier(*values):
    return dict(zip(TIERS, values))


# id: (field, kind, op, thresholds per tier as declaration text, points, mandatory)
NUMERIC = {
    "A1.4": ("industrial_value.enterprises_served", "count", "ge", per_tier(50, 40, 20, 10, 10), 25, True),
    "A1.5": ("industrial_value.industrial_compute_share", "share", "ge", per_tier("60%", "50%", "40%", "20%", "80%"), 15, False),
    "A1.7": ("industrial_value.rack_efficiency", "efficiency", "ge", per_tier(150, 150, 100, 50, 50), 10, False),
    "A1.9": ("industrial_value.rnd_spend", "money", "ge", per_tier("1000万", "800万", "500万", "300万", "200万"), 10, False),
    "A2.2": ("technical.egress_bandwidth", "bandwidth", "ge", per_tier("1 Tbps", "1 Tbps", "500 Gbps", "100 Gbps", "100 Gbps"), 5, False),
    "A2.4": ("technical.storage_capacity", "storage", "ge", per_tier(15, 15, 10, 5, 1), 5, False),
    "A2.5": ("technical.racks_total", "count", "ge", per_tier(3000, 3000, 1500, 500, 300), 5, False),
    "A2.7": ("technical.fp16_peak", "compute", "ge", per_tier(2000, 2000, 1000, 500, 300), 10, True),
    "A2.9": ("technical.fault_detection_rate", "share", "ge", per_tier("99%", "99%", "99%", "95%", "95%"), 5, False),
    "A2.11": ("technical.dr_level", "count", "ge", per_tier(5, 5, 5, 3, 3), 5, False),
    "A2.12": ("technical.pue", "number", "lt", per_tier("1.25", "1.20", "1.30", "1.50", "1.50"), 15, False),
    "A2.13": ("technical.rer", "share", "ge", per_tier("20%", "80%", "10%", "5%", "5%"), 5, False),
    "A2.14": ("technical.domestic_compute_share", "share", "ge", per_tier(*["70%"] * 5), 15, False),
    "A2.15": ("technical.domestic_consumed_share", "share", "ge", per_tier(*["60%"] * 5), 5, False),
}

LEVELS = {
    "A1.10": ("industrial_value.research_level", ["none", "municipal", "provincial", "national"],
              per_tier("national", "national", "provincial", "municipal", "municipal"), 10),
    "A2.1": ("technical.machine_room_grade", ["none", "C", "B", "A"], per_tier("A", "A", "B", "C", "C"), 5),
    "A2.3": ("technical.backbone_link", ["none", "municipal", "provincial"],
             per_tier("provincial", "provincial", "provincial", "municipal", "municipal"), 5),
}

# indicators met only when every listed boolean field is true
FLAGS = {
    "A1.1": ["industrial_value.policy_compliant"],
    "A1.2": ["industrial_value.development_plan"],
    "A1.3": ["industrial_value.operation_plan"],
    "A1.6": ["industrial_value.virtualization.compute", "industrial_value.virtualization.storage",
             "industrial_value.virtualization.network"],
    "A1.8": ["industrial_value.public_service"],
    "A2.8": ["technical.energy_metering"],
    "A2.9": ["technical.monitoring_24x7"],
    "A3.1": ["data_access.cloud_platform", "data_access.push_to_central"],
    "A3.2": ["data_access.collect_basic", "data_access.collect_compute", "data_access.collect_security"],
    "A3.3": ["data_access.api_compliant"],
    "A3.4": ["data_access.adhoc_push"],
}

POINTS = {
    "A1.1": 5, "A1.2": 5, "A1.3": 5, "A1.4": 25, "A1.5": 15, "A1.6": 10, "A1.7": 10, "A1.8": 5, "A1.9": 10, "A1.10": 10,
    "A2.1": 5, "A2.2": 5, "A2.3": 5, "A2.4": 5, "A2.5": 5, "A2.6": 5, "A2.7": 10, "A2.8": 5, "A2.9": 5, "A2.10": 5,
    "A2.11": 5, "A2.12": 15, "A2.13": 5, "A2.14": 15, "A2.15": 5,
    "A3.1": 25, "A3.2": 25, "A3.3": 25, "A3.4": 25,
}
MANDATORY = {"A1.4", "A1.6", "A2.7"}
RACK_UTILISATION = per_tier("70%", "70%", "70%", "65%", "65%")
