#!/usr/bin/env bash
# The version matrix (issue 21.2): the fast subset listed in .ci/matrix-tests.txt, run in a fresh virtual environment
#   newest: the newest releases pyproject allows (FASTERPOSE_CI_OPENCV="==5.1.0.95" forces an OpenCV past its cap)
#   lowest: the lowest versions pyproject declares (.ci/requirements.py says where it must differ, and why)
# Usage: bash .ci/matrix.sh newest|lowest. Prints what it installed and pytest's summary; exits non-zero if the
# install or a test fails.
#   FASTERPOSE_CI_VENV_DIR        keep the environments in this folder for the next run (default: a temporary
#                                 folder, removed at the end; pip's own cache still saves the downloads)
#   FASTERPOSE_CI_INSTALL_TIMEOUT seconds the install may take (default 1200), FASTERPOSE_CI_TEST_TIMEOUT the tests
#                                 (default 900): a stalled network ends with a message saying so, not at CI's limit
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-}
if [[ "$kind" != newest && "$kind" != lowest ]]; then
    echo "usage: bash .ci/matrix.sh newest|lowest" >&2
    exit 2
fi
install_timeout=${FASTERPOSE_CI_INSTALL_TIMEOUT:-1200}
test_timeout=${FASTERPOSE_CI_TEST_TIMEOUT:-900}
if [[ -n "${FASTERPOSE_CI_VENV_DIR:-}" ]]; then
    mkdir -p "$FASTERPOSE_CI_VENV_DIR"
    venv="$FASTERPOSE_CI_VENV_DIR/venv-$kind"
else
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/fasterpose-ci-$kind.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    venv="$tmp/venv"
fi
say() { echo "matrix $kind: $*"; }

python3 .ci/requirements.py "$kind" > "$venv.requirements.txt" 2> "$venv.notes.txt" || { cat "$venv.notes.txt"; exit 1; }
say "requirements from pyproject.toml: $(tr '\n' ' ' < "$venv.requirements.txt")"
sed "s/^# /matrix $kind: note: /" "$venv.notes.txt"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
# PyPI's Linux torch wheels are CUDA builds (the CPU builds live on download.pytorch.org, which CI cannot reach): the
# newest torch brings its nvidia-* packages (about 3 GB) and runs on the CPU without a GPU. A pip configuration that
# caps torch at a release kept on local disk (this workplace's /etc/xdg/pip/constraints.txt) is lifted here: the
# newest environment must get the newest release.
# pip's notes on local index folders that lack a package are noise here: left out (its errors and other warnings stay).
quiet() { { grep -v "^WARNING: Location 'file:" || true; } >&2; }
start=$SECONDS
if ! PIP_CONSTRAINT=/dev/null timeout "$install_timeout" "$venv/bin/python" -m pip install -q --upgrade \
        --timeout 60 --retries 5 --progress-bar off -r "$venv.requirements.txt" 2>&1 | quiet; then
    say "FAILED to install its packages within ${install_timeout}s (a slow or broken network, or a release that" \
        "cannot be installed: see pip's message above); set FASTERPOSE_CI_INSTALL_TIMEOUT to wait longer"
    exit 1
fi
if ! timeout "$install_timeout" "$venv/bin/python" -m pip install -q --no-deps --timeout 60 --retries 5 -e . 2>&1 \
        | quiet; then
    say "FAILED to install fasterpose itself (pip install --no-deps -e .)"
    exit 1
fi
say "installed in $((SECONDS - start)) s"
"$venv/bin/python" - "$kind" <<'PY'
import importlib.metadata as md
import platform
import sys

names = ["torch", "numpy", "opencv-python-headless", "onnxruntime", "onnx", "pycocotools", "pyyaml", "tqdm",
         "safetensors", "matplotlib", "scipy", "pytest"]
found = []
for name in names:
    try:
        found.append(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        pass
print(f"matrix {sys.argv[1]}: python {platform.python_version()}; " + "; ".join(found))
PY
start=$SECONDS
set +e
timeout "$test_timeout" "$venv/bin/python" -m pytest -q -p no:cacheprovider $(grep -v '^\s*#' .ci/matrix-tests.txt)
status=$?
set -e
if [[ $status -eq 124 ]]; then
    say "FAILED: the tests ran past ${test_timeout}s (FASTERPOSE_CI_TEST_TIMEOUT)"
elif [[ $status -ne 0 ]]; then
    say "FAILED (pytest exit $status) after $((SECONDS - start)) s"
else
    say "passed in $((SECONDS - start)) s"
fi
exit $status
