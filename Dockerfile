# Keel's image: `keel api` (default), `keel worker`, and the migrations.
#   docker build -t keel .
#   docker run keel                       # the API (KEEL_* variables configure it)
#   docker run keel worker --concurrency 16
#   docker run keel db upgrade            # or: docker run --entrypoint alembic keel upgrade head
# deploy/compose.yaml runs the whole shape (API, worker, Postgres, Redis).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY pyproject.toml README.md /src/
COPY domain /src/domain
COPY application /src/application
COPY adapters /src/adapters
COPY entrypoints /src/entrypoints
# Keel's dependencies only: the code itself runs from /app, beside its migrations.
RUN /opt/venv/bin/pip install /src && /opt/venv/bin/pip uninstall -y keel

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin keel
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root alembic.ini ./
COPY --chown=root:root alembic ./alembic
COPY --chown=root:root domain ./domain
COPY --chown=root:root application ./application
COPY --chown=root:root adapters ./adapters
COPY --chown=root:root entrypoints ./entrypoints
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    KEEL_HOST=0.0.0.0 KEEL_PORT=8000
USER 10001
EXPOSE 8000
ENTRYPOINT ["python", "-m", "entrypoints.cli"]
CMD ["api"]
