# Runtime-only image: the wheel is built in a throwaway stage; the image gets the package and
# its runtime dependencies, no dev extra, no build tools, and runs as an unprivileged user
# (uid 10001: a mounted config file must be readable by it).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY workers ./workers
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /var/lib/trailpipe --create-home trailpipe
USER trailpipe
WORKDIR /var/lib/trailpipe
ENV TRAILPIPE_CONFIG=/etc/trailpipe/trailpipe.yaml PYTHONUNBUFFERED=1
CMD ["celery", "-A", "workers.app", "worker", "--loglevel", "info"]
