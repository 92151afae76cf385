#!/usr/bin/env bash
# Issue 13, part 2: every measurement that needs a real NVIDIA GPU, in one device call.
#
# Here (a machine with pip and the registry):   scripts/gpu_checks.sh --prepare
#   puts the wheels the GPU machine lacks in .whl/ and the accuracy anchors in .gpu/
#   (both ignored by git through .git/info/exclude).
# There (through the device tool, carry .whl and .gpu; about 6 minutes):
#   bash scripts/gpu_checks.sh
#   writes everything to $OUT/gpu_checks.log: audit doctor, the NVML call costs and the
#   sampler's CPU share, the accuracy table beside the anchor's, the audited Optuna search with
#   two trials sharing the GPU, the same under its own PID namespace, and audit demo.
# Ray Tune cannot travel (its wheel is over the 64 MiB a call may carry): its GPU check waits
# for a machine with Ray installed.
set -u
if [ "${1:-}" = "--prepare" ]; then
  grep -qx '/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
  grep -qx '/.gpu/' .git/info/exclude || echo /.gpu/ >> .git/info/exclude
  rm -rf .whl .gpu && mkdir -p .whl .gpu
  cp -r ../shared/tools .gpu/tools
  platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
  for wheel in optuna==5.0.0 sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3 colorlog==6.12.0 tomlkit==0.15.2; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms -d .whl "$wheel" || exit 1
  done
  python3 -m pip wheel -q --no-deps -w .whl . || exit 1
  du -sh .whl .gpu
  exit 0
fi
OUT=${OUT:-/tmp/gpu-checks}
mkdir -p "$OUT"
LOG="$OUT/gpu_checks.log"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PATH="/tmp/site/bin:$PATH"
cd /tmp || exit 1
REPO=$OLDPWD
step() {  # step NAME SECONDS COMMAND...: run one check, its output and exit status into the log
  local name=$1 seconds=$2; shift 2
  echo "=== $name ($(date -u +%H:%M:%S)): $*" | tee -a "$LOG"
  timeout "$seconds" "$@" 2>&1 | tee -a "$LOG"
  echo "=== $name rc=${PIPESTATUS[0]}" | tee -a "$LOG"
}
step machine 20 bash -c "nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv; python3 -c 'import torch, pynvml; print(torch.__version__, pynvml.__file__)'"
step doctor 60 audit doctor
step nvml-costs 60 python3 "$REPO/scripts/bench_nvml.py" --seconds 20
step accuracy 150 python3 "$REPO/scripts/bench_accuracy.py" --reps 5
step accuracy-anchor 120 python3 "$REPO/.gpu/tools/gpu_accuracy_anchor.py"
step optuna-shared-gpu 120 python3 "$REPO/scripts/gpu_search_check.py" --trials 8 --jobs 2
step optuna-own-pid-namespace 120 unshare --pid --fork --mount-proc python3 "$REPO/scripts/gpu_search_check.py" --trials 4 --jobs 1
step demo 120 audit demo
