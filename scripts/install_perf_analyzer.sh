#!/usr/bin/env bash
# Install Triton's perf_analyzer into .tools/perf_analyzer/ (gitignored), apart from the
# project's own tritonclient: the binary comes out of the tritonclient[all]==2.41.0 wheel (the
# last one carrying it), libcudart.so.12 out of PyPI's nvidia-cuda-runtime-cu12 wheel (the
# binary links it; no GPU is needed for HTTP or gRPC), libb64.so.0d from Debian's libb64-0d.
# Idempotent and offline-safe: once installed, it downloads nothing.
# Run it: .tools/perf_analyzer/perf_analyzer (a launcher that sets LD_LIBRARY_PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.tools/perf_analyzer
TRITONCLIENT=2.41.0
CUDART=12.9.79
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python

if [ ! -e /usr/lib/x86_64-linux-gnu/libb64.so.0d ] && ! ldconfig -p 2>/dev/null | grep -q libb64.so.0d; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -qq libb64-0d >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq libb64-0d >/dev/null; }) \
      || echo "install_perf_analyzer: could not apt-get install libb64-0d" >&2
  else
    echo "install_perf_analyzer: libb64.so.0d missing; install Debian's libb64-0d (as root)" >&2
  fi
fi

if [ -x "$DEST/bin/perf_analyzer" ] && [ -e "$DEST/lib/libcudart.so.12" ] && [ -x "$DEST/perf_analyzer" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" \
  "tritonclient==$TRITONCLIENT" "nvidia-cuda-runtime-cu12==$CUDART" >"$tmp/pip.log" 2>&1; then
  grep -v '^WARNING: Location' "$tmp/pip.log" >&2 || true
  if [ "${CI:-}" = true ]; then
    echo "install_perf_analyzer: download failed; CI needs perf_analyzer" >&2
    exit 1
  fi
  echo "install_perf_analyzer: download failed (offline?); the perf_analyzer tests will skip" >&2
  exit 0
fi
wheel_tc=$(ls "$tmp"/tritonclient-"$TRITONCLIENT"-*.whl)
wheel_rt=$(ls "$tmp"/nvidia_cuda_runtime_cu12-*.whl)
mkdir -p "$tmp/x"
"$PY" - "$wheel_tc" "$wheel_rt" "$tmp/x" <<'PYEOF'
import sys, zipfile
tc, rt, out = sys.argv[1:]
zipfile.ZipFile(tc).extract("tritonclient-2.41.0.data/data/bin/perf_analyzer", out)
zipfile.ZipFile(rt).extract("nvidia/cuda_runtime/lib/libcudart.so.12", out)
PYEOF
rm -rf "$DEST.new" && mkdir -p "$DEST.new/bin" "$DEST.new/lib"
mv "$tmp/x/tritonclient-$TRITONCLIENT.data/data/bin/perf_analyzer" "$DEST.new/bin/"
mv "$tmp/x/nvidia/cuda_runtime/lib/libcudart.so.12" "$DEST.new/lib/"
chmod +x "$DEST.new/bin/perf_analyzer"
cat > "$DEST.new/perf_analyzer" <<'SH'
#!/usr/bin/env bash
# perf_analyzer from tritonclient 2.41.0, with its libcudart beside it.
here=$(cd "$(dirname "$0")" && pwd)
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$here/bin/perf_analyzer" "$@"
SH
chmod +x "$DEST.new/perf_analyzer"
rm -rf "$DEST" && mv "$DEST.new" "$DEST"
"$DEST/perf_analyzer" --version >/dev/null 2>&1 || "$DEST/perf_analyzer" -h >/dev/null 2>&1 \
  || { echo "install_perf_analyzer: $DEST/perf_analyzer does not run:" >&2; "$DEST/perf_analyzer" -h 2>&1 | head -3 >&2; }
echo "perf_analyzer installed in $DEST"
