#!/usr/bin/env bash
# System packages the tests need (Debian/Ubuntu), installed only when missing; safe to run again.
#   slurm-wlm, munge: the real one-host Slurm cluster of tests/bench/slurm_cluster.py
#   iproute2: `ss`, with which tests/bench/test_slurm_env.py checks the daemons listen on 127.0.0.1
#   fonts-noto-cjk, chromium, chromium-driver: `bench report` (CJK chart labels, --format pdf) and
#     tests/bench/test_report_browser.py (the report in a real headless browser)
# Without them those tests skip (with the reason); nothing else needs them.
set -euo pipefail

PACKAGES=(slurm-wlm munge iproute2 fonts-noto-cjk chromium chromium-driver)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
