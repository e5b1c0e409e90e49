#!/usr/bin/env bash
# The committed fmnist-ofa package's whole training recipe, one command; every phase resumes from its own
# checkpoint when rerun, and a finished phase is skipped.
#   [THREADS=2] [CK=models/fmnist-ofa/checkpoints] models/fmnist-ofa/train.sh
# 1. 11 epochs: 4 of the largest subnet alone on the labels, then 7 of the sandwich rule with in-place
#    distillation (the smallest subnet at the smallest resolution, one random subnet at its own).
# 2. 2 epochs from (1), fresh cosine schedule from lr 0.015: sandwich rule with the distilled subnets (the smallest,
#    two random ones and the largest architecture) all at one resolution drawn per step (--students step).
# 3. 2 more epochs of (2) from lr 0.01.
# Then models/fmnist-ofa/build-package.sh turns $CK/phase3/last.pt into the package.
set -euo pipefail
cd "$(dirname "$0")/../.."
CK=${CK:-models/fmnist-ofa/checkpoints}
T=(--threads "${THREADS:-2}")
node dist/models/fmnist-ofa/data.js .cache/fmnist
/usr/bin/python3 models/fmnist-ofa/train.py "${T[@]}" --out "$CK/phase1"
/usr/bin/python3 models/fmnist-ofa/train.py "${T[@]}" --init "$CK/phase1/last.pt" --full-epochs 0 --epochs 2 --lr 0.015 --random 2 --students step --out "$CK/phase2"
/usr/bin/python3 models/fmnist-ofa/train.py "${T[@]}" --init "$CK/phase2/last.pt" --full-epochs 0 --epochs 2 --lr 0.01 --random 2 --students step --out "$CK/phase3"
