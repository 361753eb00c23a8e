# syntax=docker/dockerfile:1
# Two images from one file:
#   backend  (default)      uvicorn app.main:app on 0.0.0.0:7071, with the sample page
#            docker build -t serverless-signalr .
#   emulator                signalr-emulator --host 0.0.0.0 --port 8888 [--config FILE]
#            docker build --target emulator -t signalr-emulator .
# The emulator image holds the protocol core and the emulator only, not the backend.
# Run: see docker-compose.yml and docs/deploy.md.

# --- the official browser client, from the npm lock file (served by the page, no CDN) -------
FROM node:22-slim AS browser-client
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- the Python package and its dependencies, in a virtual environment ----------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY signalr_protocol ./signalr_protocol
COPY app ./app
COPY emulator ./emulator
RUN pip install .

# --- the same environment without the backend: the emulator must run without it ------------
FROM build AS emulator-build
RUN python -I -c "import app, shutil; shutil.rmtree(app.__path__[0])" \
    && rm /opt/venv/bin/serverless-signalr \
    && signalr-emulator --help >/dev/null

# --- what both images run on: no compilers, no npm, a non-root user -------------------------
FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin signalr
WORKDIR /srv

# --- the local SignalR Service emulator ------------------------------------------------------
FROM runtime AS emulator
COPY --from=emulator-build /opt/venv /opt/venv
COPY docker/emulator-settings.json ./docker/emulator-settings.json
USER signalr
EXPOSE 8888
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=10 \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 8888), timeout=2).close()"]
CMD ["signalr-emulator", "--host", "0.0.0.0", "--port", "8888"]

# --- the backend (the default target: last) -------------------------------------------------
FROM runtime AS backend
COPY --from=build /opt/venv /opt/venv
# The sample page is served from ./web of the working directory (app/routers/web.py).
COPY web ./web
COPY --from=browser-client /build/node_modules/@microsoft/signalr/dist/browser/ ./web/vendor/
COPY --from=browser-client /build/node_modules/@microsoft/signalr-protocol-msgpack/dist/browser/ ./web/vendor/
USER signalr
EXPOSE 7071
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7071/healthz', timeout=2)"]
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "7071", "--proxy-headers", "--forwarded-allow-ips", "*", "--no-server-header"]
