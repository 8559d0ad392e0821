"""`parley-server` / `python -m parley.server`: wire everything, serve, drain on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from parley.server.agents.profiles import build_registry
from parley.server.api.server import ParleyServer
from parley.server.config import ConfigError, Settings, load_settings
from parley.server.engine.engine import Engine
from parley.server.logs import configure_logging
from parley.server.store import open_store

logger = logging.getLogger("parley.server")


async def serve(settings: Settings) -> None:
    store = open_store(settings.store_url)
    await store.open()
    try:
        engine = Engine(
            store, build_registry(settings.agents), settings.limits, lease_ttl=settings.lease_ttl
        )
        await engine.start()
        server = ParleyServer(engine, settings)
        port = await server.start()

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # Only now: a supervisor may send SIGTERM the moment it reads this line.
        host = settings.address.rpartition(":")[0]
        logger.info("parley listening on %s:%d", host, port)
        await stop.wait()
        logger.info("shutting down: draining for up to %gs", settings.grace_period)
        await server.stop(settings.grace_period)
        await engine.close()
    finally:
        await store.close()
    logger.info("stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="parley-server", description=__doc__)
    parser.add_argument("--config", help="TOML config file (default: $PARLEY_CONFIG)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, os.environ)
        configure_logging(settings.log_level, settings.log_format)
        asyncio.run(serve(settings))
    except ConfigError as error:
        print(f"parley-server: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
