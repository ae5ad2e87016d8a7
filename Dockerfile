FROM python:3.11-slim
WORKDIR /opt/trailpipe
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY workers ./workers
RUN pip install --no-cache-dir ".[dev]" && useradd --system trailpipe
USER trailpipe
ENV TRAILPIPE_CONFIG=/etc/trailpipe/trailpipe.yaml
CMD ["celery", "-A", "workers.app", "worker", "--loglevel", "info"]
