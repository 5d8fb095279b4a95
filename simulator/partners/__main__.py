"""The partners of a simulated run, from its world.json (written by ``python -m simulator``):

    python -m simulator.partners serve --world <landing>/partners/world.json --port 8765 [--api-key KEY]
    python -m simulator.partners late-updates --world <landing>/partners/world.json --landing <landing>
    python -m simulator.partners run --world <landing>/partners/world.json -- <command …>

``serve`` runs the partner API (OEM /v1/service-orders and /v1/recall-campaigns, warranty /v1/claims/status)
until interrupted; it follows world.json, so versions published by ``late-updates`` (run from another shell)
are served from the next request on. ``late-updates`` is phase 2: new versions on the API, a later warranty
CSV and late webhook lines in the landing zone (idempotent). ``run`` serves the API on a free port for as
long as a command runs, with the partners' env vars (names from contracts/partners/*.odcs.yaml) pointing
the command at it: what `make demo` and the tests' simulated world run the pipeline under.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .world import PartnerWorld, stores_from_file

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts" / "partners"


def partner_env(base_url: str, api_key: str, webhook_secret: str) -> dict[str, str]:
    """The env vars the contracts name (urlEnv, apiKeyEnv, secretEnv), set to this simulated world's values."""
    values = {"urlEnv": base_url, "apiKeyEnv": api_key, "secretEnv": webhook_secret}
    env = {}
    for path in sorted(CONTRACTS.glob("*.odcs.yaml")):
        for prop in yaml.safe_load(path.read_text()).get("customProperties") or []:
            if prop["property"] in values:
                env[prop["value"]] = values[prop["property"]]
    return env


def _serve(args) -> int:
    # Imported here: the server is its own module, and late-updates needs none of it.
    from .api import DEFAULT_API_KEY, PartnerApiServer

    stores = stores_from_file(args.world)
    with PartnerApiServer(stores, port=args.port, api_key=args.api_key or DEFAULT_API_KEY) as server:
        print(f"serving {', '.join(sorted(stores))} at {server.base_url} (world {args.world})", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def _run(args) -> int:
    from .api import DEFAULT_API_KEY, PartnerApiServer

    command = args.command_line[1:] if args.command_line[:1] == ["--"] else args.command_line
    if not command:
        raise SystemExit("run: give the command to run after --")
    secret = json.loads(Path(args.world).read_text())["webhook_secret"]
    with PartnerApiServer(stores_from_file(args.world), api_key=DEFAULT_API_KEY) as server:
        env = partner_env(server.base_url, DEFAULT_API_KEY, secret)
        print(f"partner API of {args.world} at {server.base_url}; running {' '.join(command)}", file=sys.stderr,
              flush=True)
        return subprocess.run(command, env={**os.environ, **env}).returncode


def _late_updates(args) -> int:
    world = PartnerWorld.load(args.world)
    summary = world.apply_late_updates(args.landing)
    world.save(args.world)
    print(json.dumps({k: v for k, v in summary.items() if k != "resolves"} | {"resolves": len(summary["resolves"])}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.partners", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the partner API of a world.json")
    serve.add_argument("--world", type=Path, required=True)
    serve.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    serve.add_argument("--api-key", default=None, help="bearer key the API requires (default: the simulator's)")
    late = sub.add_parser("late-updates", help="apply phase 2 (late updates) to a world and its landing zone")
    late.add_argument("--world", type=Path, required=True)
    late.add_argument("--landing", type=Path, required=True, help="the landing zone the run was written to (--out)")
    run = sub.add_parser("run", help="serve the partner API while a command runs, with the partner env vars set")
    run.add_argument("--world", type=Path, required=True)
    run.add_argument("command_line", nargs=argparse.REMAINDER, help="-- the command and its arguments")
    args = parser.parse_args(argv)
    return {"serve": _serve, "late-updates": _late_updates, "run": _run}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
