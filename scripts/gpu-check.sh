#!/usr/bin/env bash
# One prepared GPU check (~12 min on an H100): environment, GPU tests, overhead benchmarks, the
# peer comparison (scripts/peak_vs_peers.py; mamf-finder when $MAMF_FINDER names a fetched copy of
# ml-engineering's compute/accelerator/benchmarks/mamf-finder.py -- never committed), and a
# 60 s-per-dtype reference `bench run` (warm-up to steady state ≤ 90 s, search ≤ 6 s per dtype).
# Logs go under $OUT (default ./gpu-check-out). SKIP_PEERS=1 skips the peer comparison.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/steps.log"; }

log "environment"
{ nvidia-smi; nvidia-smi -q -d POWER,CLOCK,TEMPERATURE | head -120; $PY -c "import torch,sys;print(sys.version);print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"; } > "$OUT/env.txt" 2>&1

log "install (offline; wheels from .whl/ when carried)"
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
# The package maps bench/, kernels/, verify/ under icb_bench: without pip, a link farm does the same.
mkdir -p /tmp/icb/icb_bench && for d in bench kernels verify; do ln -sfn "$PWD/$d" "/tmp/icb/icb_bench/$d"; done
export PYTHONPATH=/tmp/icb:${PYTHONPATH:-}
BENCH="$PY -m icb_bench.bench.cli"
$PY -c "import icb_bench.bench.cli, icb_bench.kernels.gemm; print('import ok')" 2>&1 | tee -a "$OUT/steps.log"

log "GPU tests"
timeout 150 $PY -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tee "$OUT/pytest-gpu.log" | tail -15

if [ -z "${SKIP_BENCH:-}" ]; then
log "harness vs bare torch.matmul (fp16, fp32 with TF32 off)"
timeout 100 $PY scripts/gemm_overhead.py --device cuda --seconds 8 2>&1 | tee "$OUT/gemm_overhead.txt" | tail -12

log "power sampler cost"
timeout 60 $PY scripts/sampler_overhead.py --device cuda --seconds 8 2>&1 | tee "$OUT/sampler_overhead.txt" | tail -6
fi

if [ -z "${SKIP_PEERS:-}" ]; then
log "peer comparison: harness vs bare loop vs wide grid (fp16), mamf-finder if given"
MAMF_ARGS=()
if [ -n "${MAMF_FINDER:-}" ] && [ -f "$MAMF_FINDER" ]; then
  MAMF_ARGS=(--mamf "$MAMF_FINDER" --out "$OUT")
else
  echo "mamf-finder skipped: \$MAMF_FINDER ${MAMF_FINDER:+($MAMF_FINDER) }does not name a fetched mamf-finder.py" | tee -a "$OUT/steps.log"
fi
timeout 420 $PY scripts/peak_vs_peers.py --device cuda --dtype fp16 --seconds 10 --rounds 3 --grid-seconds 0.3 \
  --json "$OUT/peak_vs_peers.json" "${MAMF_ARGS[@]}" 2>&1 | tee "$OUT/peak_vs_peers.txt" | tail -16
fi

REF_S=${REF_DURATION:-60}  # a re-check after code changes may pass a shorter core phase (graded smoke)
log "reference run: fp16 + fp32, $REF_S s core phase each"
timeout 480 $BENCH run --backend cuda --dtypes fp16,fp32 --duration "$REF_S" --out "$OUT/reference" --json > "$OUT/reference.json" 2> "$OUT/reference.stderr"
echo "exit $?" | tee -a "$OUT/steps.log"
$BENCH show "$OUT/reference" 2>&1 | tee "$OUT/reference.txt" | tail -25

log "quick run: every dtype the card supports"
timeout 120 $BENCH run --backend cuda --dtypes all --quick --out "$OUT/quick-all" --json > "$OUT/quick-all.json" 2> "$OUT/quick-all.stderr"
echo "exit $?" | tee -a "$OUT/steps.log"
$BENCH show "$OUT/quick-all" 2>&1 | tee "$OUT/quick-all.txt" | tail -20
# one archive: the device tool brings back a limited number of files
tar czf "$OUT/records.tgz" -C "$OUT" reference quick-all && rm -rf "$OUT/reference" "$OUT/quick-all"
log "done"
