"""``signalr-emulator [--host H] [--port P] [--config F] [--keyless] [--log-level L] ...``.

The same program as ``python -m emulator``. Starts the emulator with uvicorn and prints the
connection string to use, e.g. ``Endpoint=http://127.0.0.1;Port=8888;AccessKey=...;Version=1.0;``.
``--port 0`` picks a free port (the printed string names it). ``--keyless`` (or
``EMULATOR_KEYLESS=true``) disables local auth: the connection string is then
``...;AuthType=azure.msi;...`` and the settings a backend needs are printed too.
Settings not given on the command line come from ``EMULATOR_*`` environment variables.
Log lines go to stderr, tokens redacted and control characters escaped; ``--log-format json``
(``EMULATOR_LOG_FORMAT=json``) writes one JSON object per line.
Ctrl-C or SIGTERM closes every client with a Close message allowing reconnect, then stops;
a second one forces the exit.
"""

from __future__ import annotations

import argparse
import errno
import re
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from signalr_protocol.logsafe import LOG_FORMATS, configure_logging

from .errors import EmulatorConfigError, EmulatorError
from .identity import DEFAULT_IDENTITY_HEADER
from .runner import EmulatorServer, ServerGroup, bind_socket, uvicorn_config
from .server import EmulatorApp, create_app
from .settings import EmulatorSettings, describe_settings_error
from .upstream import UpstreamTemplate

__all__ = ["main"]

LOG_LEVELS = ("debug", "info", "warning", "error")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="signalr-emulator",
        description=(
            "A local Azure SignalR Service (serverless mode). Also runs as python -m emulator."
        ),
    )
    parser.add_argument("--host", help="interface to listen on (EMULATOR_HOST, 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help="TCP port (EMULATOR_PORT, 8888; 0 = any free port)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="asrs-emulator settings.json with upstream templates (EMULATOR_CONFIG)",
    )
    parser.add_argument(
        "--keyless",
        action="store_true",
        default=None,
        help="local auth disabled: Microsoft Entra ID only (EMULATOR_KEYLESS)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=LOG_LEVELS,
        help="log level (default info)",
    )
    parser.add_argument(
        "--log-format",
        type=str.lower,
        choices=LOG_FORMATS,
        help="text, or json: one JSON object per line (EMULATOR_LOG_FORMAT, text)",
    )
    return parser.parse_args(argv)


def keyless_banner(settings: EmulatorSettings) -> str:
    """What a backend sets to reach a keyless emulator (its port as bound)."""
    base = settings.public_base
    header = settings.identity_header
    if header != DEFAULT_IDENTITY_HEADER:
        header = "<the value of EMULATOR_IDENTITY_HEADER>"  # a secret of its owner's choosing
    entra = f"{base}/identity"
    lines = [
        "Keyless (local auth disabled): access-key tokens are refused. For the backend, set",
        f"  IDENTITY_ENDPOINT={entra}/msi/token",
        f"  IDENTITY_HEADER={header}",
        f"  SIGNALR_UPSTREAM_TENANT_ID={settings.tenant_id}",
        f"  SIGNALR_UPSTREAM_AUTHORITY={entra}",
    ]
    if settings.upstream_auth_resource:
        lines.append(f"  SIGNALR_UPSTREAM_AUDIENCE={settings.upstream_auth_resource}")
    else:
        lines.append(
            "  and EMULATOR_UPSTREAM_AUTH_RESOURCE / SIGNALR_UPSTREAM_AUDIENCE to one resource "
            "(e.g. api://serverless-signalr) so upstream calls carry a bearer"
        )
    return "\n".join(lines)


_PLACEHOLDER_VALUE = re.compile(r"\{\w+\}")


def redact_url(url: str) -> str:
    """``url`` fit to print: user info and query values (a Functions ``code=`` key) hidden,
    ``{hub}``-style placeholders kept."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    items = (item.partition("=") for item in parts.query.split("&") if item)
    query = "&".join(
        f"{name}={value if _PLACEHOLDER_VALUE.fullmatch(value) else '***'}" if sep else name
        for name, sep, value in items
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _template_scope(template: UpstreamTemplate) -> str:
    patterns = (template.hub_pattern, template.category_pattern, template.event_pattern)
    if all(pattern.strip() == "*" for pattern in patterns):
        scope = "every hub, category and event"
    else:
        scope = ", ".join(
            f"{what} {pattern.strip()}"
            for what, pattern in zip(("hub", "category", "event"), patterns, strict=True)
        )
    if template.auth_resource:
        scope += f"; bearer for {template.auth_resource}"
    return scope


def upstream_banner(app: EmulatorApp) -> str:
    """Where the emulator sends hub events (``connected``, invocations...), credentials hidden."""
    settings = app.settings
    templates = list(app.templates())
    if settings.upstream_url is not None:
        if not templates:
            return (
                "Upstream: none (EMULATOR_UPSTREAM_URL is empty): hub events are not sent anywhere"
            )
        template = templates[0]
        return f"Upstream: {redact_url(template.url_template)} ({_template_scope(template)})"
    if settings.config is not None:
        source = getattr(app.templates, "path", settings.config)
        count = f"{len(templates)} template{'' if len(templates) == 1 else 's'}"
        lines = [f"Upstream: {count} from {source} (first match wins, reloaded on change)"]
        lines += [f"  {redact_url(t.url_template)}  ({_template_scope(t)})" for t in templates]
        if not templates:
            lines.append("  (none: hub events are not sent anywhere)")
        return "\n".join(lines)
    template = templates[0]
    return (
        f"Upstream: {redact_url(template.url_template)} ({_template_scope(template)}; the "
        "Functions host's default: change it with EMULATOR_UPSTREAM_URL or --config)"
    )


def listen_error(host: str, port: int, exc: OSError) -> str:
    """One line saying which address could not be bound and which setting to change."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        fix = "Stop the process using it, or choose another port with --port / EMULATOR_PORT."
    elif exc.errno == errno.EACCES:
        fix = "Ports below 1024 need privileges: choose another with --port / EMULATOR_PORT."
    else:
        fix = (
            "Choose an address of this machine with --host / EMULATOR_HOST (127.0.0.1, or "
            "0.0.0.0 for every interface)."
        )
    return f"emulator: cannot listen on {address}: {reason}. {fix}"


def settings_error(exc: BaseException, flags: Collection[str] = ()) -> str:
    """A settings error as the user reads it: one line per problem, naming the variable.

    ``emulator: invalid setting: EMULATOR_TRACE_HISTORY: Input should be a valid integer...``;
    a field in ``flags`` came from the command line and is named by its option (``--port``).
    """
    names = {field: "--" + field.replace("_", "-") for field in flags}
    lines = describe_settings_error(exc, names=names).splitlines() or ["invalid settings"]
    return "\n".join(f"emulator: invalid setting: {line}" for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until Ctrl-C or SIGTERM; returns the exit status."""
    args = _parse(argv)
    overrides = {
        k: v
        for k, v in (
            ("host", args.host),
            ("port", args.port),
            ("config", args.config),
            ("keyless", args.keyless),
            ("log_format", args.log_format),
        )
        if v is not None
    }
    try:
        settings = EmulatorSettings(**overrides)
    except ValueError as exc:  # pydantic's ValidationError, pydantic-settings' SettingsError
        print(settings_error(exc, flags=overrides), file=sys.stderr)
        return 2
    try:
        configure_logging(args.log_level, fmt=settings.log_format)
        app = create_app(settings)
    except EmulatorConfigError as exc:  # EMULATOR_UPSTREAM_URL, or EMULATOR_CONFIG's file
        field = "upstream_url" if settings.upstream_url is not None else "config"
        setting = f"--{field}" if field in overrides else f"EMULATOR_{field.upper()}"
        print(f"emulator: invalid setting: {setting}: {exc}", file=sys.stderr)
        return 2
    except (EmulatorError, ValueError, OSError) as exc:
        print(f"emulator: {describe_settings_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        print(listen_error(settings.host, settings.port, exc), file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    settings = settings.model_copy(update={"port": port})
    app.settings = settings
    print(f"Azure SignalR Service emulator listening on http://{settings.host}:{port}")
    print("Connection string:")
    print(f"  {settings.connection_string(port)}")
    print(upstream_banner(app), flush=True)
    if settings.keyless:
        print(keyless_banner(settings), flush=True)
    group = ServerGroup()
    group.add("emulator", EmulatorServer(uvicorn_config(app), app), sock)
    try:
        return group.run()
    except KeyboardInterrupt:  # before the group took over signal handling
        return 130


if __name__ == "__main__":
    sys.exit(main())
