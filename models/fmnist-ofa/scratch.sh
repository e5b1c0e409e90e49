#!/usr/bin/env bash
# The once-for-all check: trains three subnets (smallest, a medium one, largest) alone from scratch
# with the supernet's per-network budget (same epochs, schedule, augmentation, batch; labels only)
# and records their test accuracy in models/fmnist-ofa/scratch/<name>.json. Resumable: rerun to continue.
# `node dist/models/fmnist-ofa/report.js` then puts them beside the same subnets taken from the supernet.
#   [THREADS=2] [TRAIN_ARGS="..."] models/fmnist-ofa/scratch.sh [EPOCHS] [names...]
# train.py's defaults are the committed supernet's recipe; TRAIN_ARGS: recipe options a supernet trained otherwise
# used (train.py's), so both sides get the same recipe.
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS=${1:-11}
shift || true
NAMES=${*:-small medium large}
node dist/models/fmnist-ofa/data.js .cache/fmnist
mkdir -p models/fmnist-ofa/scratch
for name in $NAMES; do
  case $name in
    small) cfg='{"ks":[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],"e":[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],"d":[2,2,2,2],"image_size":22}' ;;
    medium) cfg='{"ks":[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5],"e":[4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4],"d":[3,3,3,3],"image_size":25}' ;;
    large) cfg='{"ks":[7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7],"e":[6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6],"d":[4,4,4,4],"image_size":28}' ;;
    *) echo "unknown subnet name: $name (small, medium, large)" >&2; exit 2 ;;
  esac
  out=models/fmnist-ofa/checkpoints/scratch-$name
  /usr/bin/python3 models/fmnist-ofa/train.py --subnet "$cfg" --epochs "$EPOCHS" --threads "${THREADS:-2}" ${TRAIN_ARGS:-} --out "$out"
  node -e "const f=require('fs');const s=JSON.parse(f.readFileSync('$out/scratch.json','utf8'));s.name='$name';f.writeFileSync('models/fmnist-ofa/scratch/$name.json',JSON.stringify(s,null,1)+'\n')"
done
