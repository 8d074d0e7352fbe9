#!/usr/bin/env bash
# The prepared GPU check, in parts that each fit one device command (<= 600 s; the session's
# device time, start-up included, is about 15 min, so pick one or two parts per session):
#
#   PART=tests   GPU tests, harness-vs-bare overhead, power-sampler cost        (~4 min, cap 330 s)
#   PART=peers   scripts/peak_vs_peers.py fp16: harness vs bare loop vs wide grid in paired
#                rounds (~3 min), then mamf-finder when a copy travels with the tree: its auto
#                search (<= 230 s + 10 s grace) where it has --search, else its quick and
#                exhaustive-1024 forms (<= 70 s + 10 s each; SIGINT: best so far)
#                                                  (~7 min, cap 540 s: alone in its device call)
#   PART=bench   reference `bench run` of $REF_DTYPES (fp16,fp32), $REF_DURATION s core phase
#                each (warm-up to steady state <= 90 s, search <= 10 % of the core) (~6 min, cap 420 s)
#   PART=quick   `bench run --quick` of every dtype the card supports           (~2 min, cap 150 s)
#   PART=tests,peers  several parts in order (mind the 600 s limit of one command)
#
# Every part first records the environment and sets up the package (no network on the device
# machine: wheels from .whl/ when carried, then a link farm of the tree) and checks that the
# Python modules the parts need import, else it stops at once with one line. Logs go under
# $OUT/logs, packed at the end into $OUT/gpu-check-<parts>.tgz (the device tool brings back at
# most 8 files); $OUT/steps.log has one line per step. Any step that fails or runs past its cap
# makes the last line "gpu-check FAILED: ..." and the exit status 1 (the other steps still run).
#
# The device image lacks pydantic (the CLI imports it). Before the run, here (network to PyPI):
#   scripts/gpu-check.sh prepare        # wheels for the device's Python ($DEVICE_PYTHON, 3.12) in .whl/
#   run(command="PART=tests scripts/gpu-check.sh", carry=[".whl", ".peers"])
#
# mamf-finder (stas00/ml-engineering compute/accelerator/benchmarks/mamf-finder.py) is never
# committed: fetch it before the run into the gitignored .peers/ folder and carry it, e.g.
#   mkdir -p .peers && git --git-dir=<mirror of stas00/ml-engineering> show \
#     HEAD:compute/accelerator/benchmarks/mamf-finder.py > .peers/mamf-finder.py
#   run(command="PART=peers scripts/gpu-check.sh", carry=[".peers"])
# or name another copy with MAMF_FINDER=path; without one the peers part logs a skip line.
#
# CHECK_DEVICE=cpu runs the same parts on the CPU backend with tiny durations: a dry run of this
# script's logic on a machine without a GPU (GPU tests skip; the reference run is --quick).
set -uo pipefail
cd "$(dirname "$0")/.."
#: packages the device image lacks (/work/.library/device/KINDS.md lists what it holds), with
#: their dependencies, as wheels for its Python
DEVICE_WHEELS=(pydantic)
DEVICE_PYTHON=${DEVICE_PYTHON:-3.12}
#: modules every part imports (lazily imported ones included: a missing one would fail late)
MODULES=(torch numpy scipy pandas pyarrow yaml pydantic typer rich)
if [ "${1:-}" = prepare ]; then
  rm -rf .whl && mkdir -p .whl
  python3 -m pip download -q --dest .whl --only-binary=:all: --python-version "$DEVICE_PYTHON" \
    --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 "${DEVICE_WHEELS[@]}" \
    || { echo "gpu-check prepare FAILED: pip download ${DEVICE_WHEELS[*]} for Python $DEVICE_PYTHON" >&2; exit 1; }
  ls .whl
  exit 0
fi
OUT=${OUT:-$PWD/gpu-check-out}
LOGS=$OUT/logs
mkdir -p "$LOGS"
FAILED=()
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
DEV=${CHECK_DEVICE:-cuda}
PARTS=${PART:-}
REF_S=${REF_DURATION:-60}  # a re-check after code changes may pass a shorter core phase (graded smoke)
REF_DTYPES=${REF_DTYPES:-fp16,fp32}
MAMF_FINDER=${MAMF_FINDER:-$PWD/.peers/mamf-finder.py}
PEERS_CAP=${PEERS_CAP:-540}  # seconds the peers step may run (see part_peers for the arithmetic)
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/steps.log"; }
# run_step NAME CAP_S CMD...: CMD under a timeout (its whole process group: no orphan keeps the
# device busy), its exit status and wall time logged (124: it ran past CAP_S); a failure is kept
run_step() {
  local name=$1 cap=$2 t0=$SECONDS; shift 2
  timeout --kill-after=10 "$cap" "$@"
  local rc=$?
  echo "$name: exit $rc in $((SECONDS - t0)) s$([ $rc -eq 124 ] && echo " (timed out after $cap s)")" | tee -a "$OUT/steps.log"
  [ $rc -eq 0 ] || FAILED+=("$name exit $rc")
  return 0
}

case "$DEV" in
  cuda) BACKEND=cuda ;;
  cpu) BACKEND=cpu ;;
  *) echo "CHECK_DEVICE=$DEV: expected cuda or cpu" >&2; exit 2 ;;
esac
if [ -z "$PARTS" ]; then
  echo "PART is not set: expected one or more of tests, peers, bench, quick (comma-separated), e.g. PART=tests" >&2
  exit 2
fi
IFS=, read -r -a PART_LIST <<< "$PARTS"
for p in "${PART_LIST[@]}"; do
  case "$p" in tests|peers|bench|quick) ;; *) echo "PART=$PARTS: unknown part '$p' (expected tests, peers, bench, quick)" >&2; exit 2 ;; esac
done

setup() {
  log "environment ($DEV; parts: $PARTS)"
  {
    uptime
    if [ "$DEV" = cuda ]; then nvidia-smi; nvidia-smi -q -d POWER,CLOCK,TEMPERATURE | head -120; fi
    $PY -c "import torch,sys;print(sys.version);print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
  } > "$LOGS/env.txt" 2>&1
  if ls .whl/*.whl >/dev/null 2>&1; then
    log "install (offline, wheels from .whl/)"
    if $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      >> "$LOGS/env.txt" 2>&1; then export PYTHONPATH=/tmp/site; else log "install from .whl/ failed (see env.txt)"; fi
  fi
  # The package maps bench/, kernels/, verify/ under icb_bench: without pip, a link farm does the same.
  local farm=${TMPDIR:-/tmp}/icb-check-$$
  mkdir -p "$farm/icb_bench" && for d in bench kernels verify; do ln -sfn "$PWD/$d" "$farm/icb_bench/$d"; done
  export PYTHONPATH=$farm:${PYTHONPATH:-}
  BENCH=("$PY" -m icb_bench.bench.cli)
  local need=("${MODULES[@]}")
  [[ ",$PARTS," == *,tests,* ]] && need+=(pytest)
  [ "$DEV" = cuda ] && need+=(pynvml)
  local missing
  missing=$($PY -c "import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m) is None))" "${need[@]}")
  if [ -n "$missing" ]; then
    echo "gpu-check FAILED: setup: $PY lacks $missing (a package the device image lacks: add it to DEVICE_WHEELS, run scripts/gpu-check.sh prepare here, carry .whl)" | tee -a "$OUT/steps.log"
    exit 1
  fi
  if ! $PY -c "import icb_bench.bench.cli, icb_bench.kernels.gemm" > "$LOGS/import.txt" 2>&1; then
    echo "gpu-check FAILED: setup: icb_bench does not import: $(tail -1 "$LOGS/import.txt")" | tee -a "$OUT/steps.log"
    exit 1
  fi
  log "import ok"
}

part_tests() {
  local s=8
  [ "$DEV" = cpu ] && s=0.5
  log "GPU tests"
  # a test file broken elsewhere must not cost the GPU tests of the others (it still fails the step)
  run_step pytest-gpu 150 $PY -m pytest -q -m gpu -p no:cacheprovider --continue-on-collection-errors tests \
    > "$LOGS/pytest-gpu.log" 2>&1
  tail -15 "$LOGS/pytest-gpu.log"
  log "harness vs bare torch.mm (fp16, fp32 with TF32 off)"
  run_step gemm-overhead 100 $PY scripts/gemm_overhead.py --device "$DEV" --seconds "$s" > "$LOGS/gemm_overhead.txt" 2>&1
  tail -12 "$LOGS/gemm_overhead.txt"
  log "power sampler cost"
  run_step sampler-overhead 60 $PY scripts/sampler_overhead.py --device "$DEV" --seconds "$s" > "$LOGS/sampler_overhead.txt" 2>&1
  tail -6 "$LOGS/sampler_overhead.txt"
}

part_peers() {
  local args=(--device "$DEV" --json "$LOGS/peak_vs_peers.json")
  if [ "$DEV" = cuda ]; then
    # budget of the $PEERS_CAP s cap: ~180 s before mamf-finder (search, grid, 9 rounds of 3 x 2 s), then
    # - a copy with --search (version >= 3): its auto form alone, 230 s + 10 s grace after SIGINT
    #   (its adaptive warm-up alone may take 45 s and its thermal soak 20 s before it confirms the
    #   sustained MSMF headline the harness is compared with; 70 s would stop it before that):
    #   180 + 240 = 420 s of a 540 s cap, 120 s of margin;
    # - else its README's quick and exhaustive forms, 2 x (70 s + 10 s) = 160 s: 340 s, 200 s of margin.
    # 540 s leaves the 600 s device command 60 s for setup: run this part alone in its call.
    args+=(--dtype fp16 --seconds 2 --rounds 9 --grid-seconds 0.15 --mamf-grace 10)
    if [ -f "$MAMF_FINDER" ] && grep -q -- '"--search"' "$MAMF_FINDER"; then
      args+=(--mamf-forms auto --mamf-timeout "${MAMF_TIMEOUT:-230}")
    else
      args+=(--mamf-forms quick,exhaustive-1024 --mamf-timeout "${MAMF_TIMEOUT:-70}")
    fi
  else  # dry run: one core, a two-size grid, the smallest durations that still answer
    args+=(--dtype fp32 --seconds 0.2 --rounds 5 --grid-seconds 0.02 --search-budget 1 --warmup-s 0.3 --threads 1 --grid-sizes 128,256)
  fi
  log "peer comparison: harness vs bare loop vs wide grid, mamf-finder if carried"
  if [ "$DEV" = cuda ] && [ -f "$MAMF_FINDER" ]; then
    args+=(--mamf "$MAMF_FINDER" --out "$LOGS")
    echo "mamf-finder: $MAMF_FINDER" | tee -a "$OUT/steps.log"
  else
    echo "mamf-finder skipped: no copy at $MAMF_FINDER (fetch it into .peers/ and carry .peers, or set MAMF_FINDER)$([ "$DEV" = cpu ] && echo '; and it needs CUDA')" \
      | tee -a "$OUT/steps.log"
  fi
  run_step peak-vs-peers "$PEERS_CAP" $PY scripts/peak_vs_peers.py "${args[@]}" > "$LOGS/peak_vs_peers.txt" 2>&1
  tail -16 "$LOGS/peak_vs_peers.txt"
}

part_bench() {
  local args=(--backend "$BACKEND" --dtypes "$REF_DTYPES" --duration "$REF_S")
  [ "$DEV" = cpu ] && args=(--backend cpu --dtypes fp32 --quick --duration "${REF_DURATION:-1}")
  log "reference run: ${args[*]}"
  run_step reference 420 "${BENCH[@]}" run "${args[@]}" --out "$LOGS/reference" --json > "$LOGS/reference.json" 2> "$LOGS/reference.stderr"
  run_step reference-show 60 "${BENCH[@]}" show "$LOGS/reference" > "$LOGS/reference.txt" 2>&1
  tail -25 "$LOGS/reference.txt"
}

part_quick() {
  local dtypes=all
  [ "$DEV" = cpu ] && dtypes=fp32
  log "quick run: dtypes $dtypes"
  run_step quick-all 150 "${BENCH[@]}" run --backend "$BACKEND" --dtypes "$dtypes" --quick --out "$LOGS/quick-all" --json \
    > "$LOGS/quick-all.json" 2> "$LOGS/quick-all.stderr"
  run_step quick-all-show 60 "${BENCH[@]}" show "$LOGS/quick-all" > "$LOGS/quick-all.txt" 2>&1
  tail -20 "$LOGS/quick-all.txt"
}

setup
for p in "${PART_LIST[@]}"; do "part_$p"; done
# one archive of every log and record: the device tool brings back at most 8 files
if tar czf "$OUT/gpu-check-${PARTS//,/-}.tgz" -C "$OUT" logs; then rm -rf "$LOGS"; else FAILED+=("archive of $LOGS"); fi
if [ ${#FAILED[@]} -gt 0 ]; then
  log "gpu-check FAILED: ${FAILED[*]} (parts $PARTS; steps.log and the archive say more)"
  exit 1
fi
log "done ($PARTS)"
