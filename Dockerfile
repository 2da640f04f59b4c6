# The segstream worker. The model is exported at build time; the container downloads nothing.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    SEGSTREAM_MODEL_CACHE=/opt/segstream/models SEGSTREAM_DATA_DIR=/var/lib/segstream
WORKDIR /opt/segstream/src
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY models ./models
RUN pip install ".[export]" && pip install --no-deps recbole \
    && segstream model export
EXPOSE 6066
CMD ["segstream", "worker", "--loglevel", "info"]
