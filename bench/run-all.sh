#!/usr/bin/env bash
# Runs every benchmark one after another (nothing else should run meanwhile) and keeps each JSON
# in bench/results/<name>.json, stderr in bench/results/<name>.log.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
run() {
  local name=$1; shift
  echo "== $name: $*" >&2
  local t0=$(date +%s)
  if "$@" > "bench/results/$name.json" 2> "bench/results/$name.log"; then
    echo "   ok in $(( $(date +%s) - t0 )) s" >&2
  else
    echo "   FAILED (exit $?) after $(( $(date +%s) - t0 )) s; see bench/results/$name.log" >&2
  fi
}
only=${1:-all}
[[ $only == all || $only == materialize ]] && run materialize node dist/bench/materialize.js
[[ $only == all || $only == ofa-baseline ]] && run ofa-baseline node dist/bench/ofa-baseline.js
[[ $only == all || $only == search ]] && run search node dist/bench/search.js
[[ $only == all || $only == swap ]] && run swap node dist/bench/swap.js
[[ $only == all || $only == swap ]] && run swap-inline node dist/bench/swap.js --inline-build
[[ $only == all || $only == swap ]] && run swap-worker node dist/bench/swap.js --host worker
[[ $only == all || $only == swap ]] && run swap-onnx-cache node dist/bench/swap.js --onnx-cache
[[ $only == all || $only == swap ]] && run swap-decisions node dist/bench/swap.js --decisions
[[ $only == all || $only == profile ]] && run profile node dist/bench/profile.js
[[ $only == all || $only == registry ]] && run registry node dist/bench/registry.js
[[ $only == all || $only == calibration ]] && run calibration node dist/bench/calibration.js
[[ $only == all || $only == agent-footprint ]] && run agent-footprint node dist/bench/agent-footprint.js
[[ $only == all || $only == agent-footprint ]] && run agent-footprint-node node dist/bench/agent-footprint.js --launch node
true
