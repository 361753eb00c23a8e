# syntax=docker/dockerfile:1
# One image, two programs:
#   backend   (default)  uvicorn app.main:app on 0.0.0.0:7071
#   emulator             python -m emulator --host 0.0.0.0 --port 8888 [--config FILE]
# Build: docker build -t serverless-signalr .   Run: see docker-compose.yml and docs/deploy.md.

# --- 1. the official browser client, from the npm lock file (served by the page, no CDN) -----
FROM node:22-slim AS browser-client
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- 2. the Python package and its dependencies, in a virtual environment -------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY emulator ./emulator
RUN pip install .

# --- 3. runtime: no compilers, no npm, a non-root user --------------------------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin signalr
COPY --from=build /opt/venv /opt/venv
# The sample page is served from ./web of the working directory (app/routers/web.py).
WORKDIR /srv
COPY web ./web
COPY --from=browser-client /build/node_modules/@microsoft/signalr/dist/browser/ ./web/vendor/
COPY --from=browser-client /build/node_modules/@microsoft/signalr-protocol-msgpack/dist/browser/ ./web/vendor/
COPY docker/emulator-settings.json ./docker/emulator-settings.json
USER signalr
EXPOSE 7071 8888
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7071/healthz', timeout=2)"]
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "7071", "--proxy-headers", "--forwarded-allow-ips", "*", "--no-server-header"]
