#!/usr/bin/env bash
# Turns a trained checkpoint into the committed fmnist-ofa package, with measured accuracy:
# export (weights, calibration set, PyTorch goldens) -> accuracy table (nestswap materializes and
# scores 2,000 seeded random subnets plus the smallest and largest on the validation split) ->
# accuracy predictor (model chosen by cross-validation on 80% of the table, scored on the held-out
# 20%) -> test-split report and plot.
set -euo pipefail
cd "$(dirname "$0")/../.."
CK=${1:-models/fmnist-ofa/checkpoints/last.pt}
PKG=models/fmnist-ofa/package
node dist/models/fmnist-ofa/data.js .cache/fmnist
/usr/bin/python3 models/export.py --arch models/fmnist-ofa/arch.json --checkpoint "$CK" --data .cache/fmnist --out "$PKG"
rm -f .cache/accuracy-table.jsonl.*
node dist/models/fmnist-ofa/accuracy-table.js --package "$PKG" --n 2000 --shards 2
/usr/bin/python3 models/train_predictor.py --arch models/fmnist-ofa/arch.json --table .cache/accuracy-table.json --out .cache/predictor-weights.json
node dist/models/predictor-onnx.js --weights .cache/predictor-weights.json --table .cache/accuracy-table.json --package "$PKG" --out .cache/predictor.onnx | tee .cache/predictor-eval.json
cp .cache/accuracy-table.json "$PKG/accuracy-table.json"
node -e "const w=require('./.cache/predictor-weights.json'); require('fs').writeFileSync('models/fmnist-ofa/predictor-holdout.json', JSON.stringify({holdout_ids:w.holdout_ids, train_rows:w.train_rows}))"
cp .cache/predictor.onnx "$PKG/predictor.onnx"
node dist/models/add-files.js "$PKG" "$PKG/predictor.onnx:accuracy-predictor" "$PKG/accuracy-table.json:accuracy-table" --accuracy .cache/predictor-eval.json
node dist/models/fmnist-ofa/report.js --package "$PKG" --out models/fmnist-ofa
