#!/usr/bin/env bash
# Turns a trained checkpoint into the committed fmnist-ofa package, with measured accuracy:
# export (weights, calibration set, PyTorch goldens) -> accuracy table (nestswap materializes and
# scores 2,000 seeded random subnets plus the smallest and largest on the validation split) ->
# accuracy predictor (model chosen by cross-validation on 80% of the table, scored on the held-out
# 20%) -> test-split report and plot.
#
#   models/fmnist-ofa/build-package.sh [checkpoint: train.sh's last phase]    (env: ROWS=2000, PREDICTOR=cv|linear|quadratic|mlp64|mlp128|mlp256)
#
# On a 2-core machine the table takes 100-200 minutes and the cross-validated predictor choice ~45 (its MLPs);
# PREDICTOR=quadratic skips the cross-validation. The table is resumable: its rows are kept per exported weights
# (.cache/accuracy-table-<sha256 of weights.bin>.jsonl.*), so rerunning after a crash keeps the rows already scored
# and another checkpoint starts a table of its own.
set -euo pipefail
cd "$(dirname "$0")/../.."
CK=${1:-models/fmnist-ofa/checkpoints/phase3/last.pt}
PKG=models/fmnist-ofa/package
node dist/models/fmnist-ofa/data.js .cache/fmnist
/usr/bin/python3 models/export.py --arch models/fmnist-ofa/arch.json --checkpoint "$CK" --data .cache/fmnist --out "$PKG"
# every training phase's recipe and per-epoch validation history, outermost first, from the manifest
node -e "const t=require('./$PKG/manifest.json').training||{};const ph=[...(t.earlier||[]),{recipe:t.recipe,history:t.history}];require('fs').writeFileSync('models/fmnist-ofa/training-history.json',JSON.stringify({phases:ph},null,1)+'\n')"
ROWS=${ROWS:-2000}
PREDICTOR=${PREDICTOR:-cv}
DIGEST=$(sha256sum "$PKG/weights.bin" | cut -c1-16)
node dist/models/fmnist-ofa/accuracy-table.js --package "$PKG" --n "$ROWS" --shards 2 --jsonl ".cache/accuracy-table-$DIGEST.jsonl"
/usr/bin/python3 models/train_predictor.py --arch models/fmnist-ofa/arch.json --table .cache/accuracy-table.json --out .cache/predictor-weights.json --model "$PREDICTOR"
node dist/models/predictor-onnx.js --weights .cache/predictor-weights.json --table .cache/accuracy-table.json --package "$PKG" --out .cache/predictor.onnx | tee .cache/predictor-eval.json
cp .cache/accuracy-table.json "$PKG/accuracy-table.json"
node -e "const w=require('./.cache/predictor-weights.json'); require('fs').writeFileSync('models/fmnist-ofa/predictor-holdout.json', JSON.stringify({holdout_ids:w.holdout_ids, train_rows:w.train_rows}))"
cp .cache/predictor.onnx "$PKG/predictor.onnx"
node dist/models/add-files.js "$PKG" "$PKG/predictor.onnx:accuracy-predictor" "$PKG/accuracy-table.json:accuracy-table" --accuracy .cache/predictor-eval.json
node dist/models/fmnist-ofa/report.js --package "$PKG" --out models/fmnist-ofa
