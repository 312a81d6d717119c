#!/usr/bin/env python3
"""Periodic's seed example, client side: submits job "Hello world!" for task random_print.

    python examples/python/random_print_client.py --addr 127.0.0.1:5000

``--addr`` defaults to $TASKHIVE_ADDR, else 127.0.0.1:5000. Run random_print_worker.py to
serve the job.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from taskhive import aio


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--addr", default=os.environ.get("TASKHIVE_ADDR", "127.0.0.1:5000"),
                   help="server address")
    p.add_argument("--func", default="random_print", help="task of the job")
    p.add_argument("--name", default="Hello world!", help="name of the job")
    return p.parse_args()


async def main() -> None:
    args = parse_args()
    async with aio.Client(args.addr) as client:
        job_id = await client.submit(args.func, args.name)
        print(f"submitted job {job_id}: {args.func} {args.name!r}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
