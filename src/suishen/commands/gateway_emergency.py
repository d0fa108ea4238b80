"""`suishen gateway emergency on|off|status` and `suishen gateway muster`: talk to a running
gateway's local HTTP (the config's [http] address; loopback by default).

    suishen gateway emergency on --note "fire drill" --config gateway.toml
    suishen gateway emergency off --note "all clear, brigade left" --config gateway.toml
    suishen gateway emergency status --config gateway.toml
    suishen gateway muster --config gateway.toml [--json]

``on``/``off`` POST /emergency (actor: --actor, default the login name); ``status`` prints the
emergency part of /status; ``muster`` prints who is inside now by zone (masked), or the JSON.
Exit codes: 0 done, 1 the gateway did not answer or refused, 2 a bad config.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

EXIT_UNREACHABLE = 1
EXIT_CONFIG = 2
TIMEOUT_S = 5.0


def register(commands: Any) -> None:
    """Add `emergency` and `muster` to the `gateway` group's subparsers."""
    parser = commands.add_parser(
        "emergency", help="declare or end an emergency release at a running gateway, or show it"
    )
    parser.add_argument("state", choices=("on", "off", "status"))
    parser.add_argument("--note", default="", help="why (journalled; one line, <= 200 chars)")
    parser.add_argument("--actor", default=None, help="who gives the command (default: login)")
    _common(parser)
    parser.set_defaults(handler=run_emergency)
    muster = commands.add_parser("muster", help="who is inside now, by zone (masked names)")
    muster.add_argument("--json", action="store_true", help="print the JSON as served")
    _common(muster)
    muster.set_defaults(handler=run_muster)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("gateway.toml"), metavar="FILE")
    parser.add_argument("--url", default=None, help="the gateway's local HTTP (default: [http])")


def base_url(args: argparse.Namespace) -> str | None:
    """The gateway's local HTTP address from --url or the config's [http]; None (after
    printing the problem) when the config cannot be read."""
    if args.url:
        return str(args.url).rstrip("/")
    from suishen.gateway.config import ConfigError, load_config  # noqa: PLC0415 (lazy CLI)

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"suishen gateway: {exc}", file=sys.stderr)
        return None
    host = config.http.host
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - a wildcard bind: talk to loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.http.port}"


def call(url: str, *, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """(status, JSON) of one request to the local HTTP; OSError when it does not answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - http(s) URL from the config or --url
        url, data=data, method="GET" if body is None else "POST"
    )
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, {"error": exc.reason}


def run_emergency(args: argparse.Namespace) -> int:
    base = base_url(args)
    if base is None:
        return EXIT_CONFIG
    try:
        if args.state == "status":
            status, answer = call(f"{base}/status")
            answer = answer.get("emergency") if status == 200 else answer
        else:
            actor = args.actor or _login()
            body = {"state": args.state, "actor": actor, "note": args.note}
            status, answer = call(f"{base}/emergency", body=body)
    except (OSError, ValueError) as exc:
        print(f"suishen gateway emergency: no answer from {base}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if status != 200:
        print(f"suishen gateway emergency: refused ({status}): {answer}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.state != "status":
        print("changed" if answer["changed"] else "unchanged (already so)")
        answer = answer["emergency"]
    print(_describe(answer))
    return 0


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def _describe(emergency: dict[str, Any]) -> str:
    state = "EMERGENCY (exits held open)" if emergency.get("active") else "normal"
    lines = [f"state    {state}"]
    lines.extend(
        f"{key:<8} {emergency[key]}"
        for key in ("since", "source", "actor", "note")
        if emergency.get(key) not in (None, "")
    )
    alarm = emergency.get("alarm_input")
    if alarm is not None:
        level = {True: "set", False: "clear", None: "unknown"}[alarm.get("alarm")]
        lines.append(f"alarm    {alarm.get('state')}, input {level}")
    return "\n".join(lines)


def run_muster(args: argparse.Namespace) -> int:
    base = base_url(args)
    if base is None:
        return EXIT_CONFIG
    try:
        status, muster = call(f"{base}/muster")
    except (OSError, ValueError) as exc:
        print(f"suishen gateway muster: no answer from {base}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if status != 200:
        print(f"suishen gateway muster: refused ({status}): {muster}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(muster, ensure_ascii=False, indent=1))
    else:
        print("\n".join(muster_lines(muster)))
    return 0


def muster_lines(muster: dict[str, Any]) -> list[str]:
    """The muster list as a table by zone."""
    import datetime as dt  # noqa: PLC0415

    at = dt.datetime.fromtimestamp(muster["at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"muster list at {at}: {muster['count']} inside"]
    for zone, names in muster["zones"].items():
        lines.append(f"zone {zone} ({len(names)})")
        lines.extend(f"  {name}" for name in names)
    return lines
