"""A Python worker (asyncio) for the load runner's remote class NAME that answers every run
done at once; used by bench/remote-tasks. Prints "connected" once its stream is open."""

import asyncio
import sys

from taskhive import aio

RESULT = b'{"request_context": "noop"}'


async def main(addr: str, task: str, capacity: int) -> None:
    w = aio.Worker(addr, capacity=capacity)

    @w.task(task)
    async def noop(job: aio.Job) -> bytes:
        return RESULT

    run = asyncio.create_task(w.run())
    if await w.wait_connected(30):
        print("connected", flush=True)
    await run


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
