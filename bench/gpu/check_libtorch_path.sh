#!/usr/bin/env bash
# Shows that the harness binary runs on a libtorch found through LD_LIBRARY_PATH alone, as on the GPU
# machine (where the build's rpath points at a folder that does not exist): copies this machine's
# torch package to a scratch folder, hides the build's libtorch folder (renamed back on exit), and
# runs `harness doctor` and `harness loss-check` with LD_LIBRARY_PATH at the copy. Passes when the
# doctor reports the copy as the loaded libtorch and both commands succeed.
#   bash bench/gpu/check_libtorch_path.sh [HARNESS]      (default target/debug/harness)
set -euo pipefail
cd "$(dirname "$0")/../.."
H=$(realpath "${1:-target/debug/harness}")
SITE=$(realpath .venv/lib/python3*/site-packages)
COPY=$(mktemp -d /tmp/other-torch.XXXXXX)
restore() { [ -d "$SITE/torch/lib.hidden" ] && mv "$SITE/torch/lib.hidden" "$SITE/torch/lib"; rm -rf "$COPY"; }
trap restore EXIT
cp -a "$SITE/torch" "$COPY/torch"
ln -s "$SITE/nvidia" "$COPY/nvidia"   # the CUDA libraries libtorch_cuda.so finds through $ORIGIN/../../nvidia
mv "$SITE/torch/lib" "$SITE/torch/lib.hidden"
echo "build's libtorch folder hidden: $SITE/torch/lib"
export LD_LIBRARY_PATH="$COPY/torch/lib"
"$H" doctor | tee "$COPY/doctor.txt"
grep -q "^loaded libtorch  .* in $COPY/torch/lib\$" "$COPY/doctor.txt" || { echo "FAIL: the copy is not the loaded libtorch"; exit 1; }
# Where the CUDA library loads (make setup-full's venv), it must be the copy's, beside the loaded libtorch.
if grep -q "^CUDA library     loaded" "$COPY/doctor.txt"; then
  grep -qF "loaded ($COPY/torch/lib/libtorch_cuda.so)" "$COPY/doctor.txt" || { echo "FAIL: the CUDA library is not the copy's"; exit 1; }
fi
"$H" loss-check --steps 5 | tail -1
echo "PASS: the binary ran on $COPY/torch/lib alone"
