# Sourced by a GPU run's run.sh after stage.sh: the bundle's environment, $R for results, `step` to run
# and log one step (a step that fails is logged and the next one runs), `users` for one bench.many_users
# invocation on TurboMind, and machine.txt (card, versions, commit) written by the first script of a run.
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results M=/tmp/models SMOL=/tmp/models/SmolLM2-135M-Instruct
mkdir -p $R
users() {  # users NAME MODEL ROOM_PROCESSES USERS... -- TOKENS...  (results in $R/NAME.md and .log)
  # stopped with SIGINT, so that the bench stops the console it started (its engine frees the GPU)
  local name=$1 model=$2 processes=$3; shift 3
  local counts=() tokens=()
  while [ "$1" != "--" ]; do counts+=("$1"); shift; done; shift
  tokens=("$@")
  timeout -s INT 600 python3 -m bench.many_users --engine turbomind --model "$model" --room-processes "$processes" \
    --processes 8 --users "${counts[@]}" --tokens "${tokens[@]}" --gradio-client --out $R/$name.md > $R/$name.log 2>&1
}
step() { echo "=== $(date +%T) $1" >> $R/steps.log; shift; "$@"; echo "    rc=$? at $(date +%T)" >> $R/steps.log; }
[ -f $R/machine.txt ] || {  # a second script of the same run keeps the first one's record
  echo "commit ${COMMIT:-unknown}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  nproc
  python3 -c "import sys, torch, lmdeploy, transformers, gradio; print(sys.version.split()[0], torch.__version__, lmdeploy.__version__, transformers.__version__, gradio.__version__)"
} > $R/machine.txt 2>&1
