"""ListJobs: sync and asyncio iterators over pages, filters and refusals."""

from __future__ import annotations

import pytest

import taskhive
from taskhive import JobState, aio
from support import run_async


def _submit(c: taskhive.Client) -> None:
    c.submit_many(
        [{"task": "lj", "name": f"p{i:02}", "priority": i % 3} for i in range(25)]
        + [{"task": "lj", "name": f"s{i}", "delay": 3600 - i} for i in range(3)]
    )


def test_list_jobs_iterates_every_page_in_order(server):
    with taskhive.Client(server.addr) as c:
        _submit(c)
        jobs = list(c.list_jobs("lj", page_size=4))
        assert len(jobs) == 28
        assert len({j.name for j in jobs}) == 28
        pending = jobs[:25]
        assert all(j.state == JobState.PENDING for j in pending)
        keys = [(-j.priority, j.sched_at_ms, j.id) for j in pending]
        assert keys == sorted(keys), "run order"
        assert [j.name for j in jobs[25:]] == ["s2", "s1", "s0"], "scheduled by due time"

        page = c.list_jobs_page("lj", state="scheduled", page_size=2)
        assert [j.name for j in page.jobs] == ["s2", "s1"] and page.next_page_token
        last = c.list_jobs_page("lj", state="scheduled", page_token=page.next_page_token)
        assert [j.name for j in last.jobs] == ["s0"] and last.next_page_token == ""

        ones = [j.name for j in c.list_jobs("lj", state=JobState.PENDING, name_prefix="p1")]
        assert sorted(ones) == [f"p{i}" for i in range(10, 20)]

        with pytest.raises(taskhive.InvalidArgumentError, match="page_size"):
            c.list_jobs_page("lj", page_size=1001)
        with pytest.raises(taskhive.InvalidArgumentError, match="page_token"):
            c.list_jobs_page("lj", page_token="garbage")


@run_async
async def test_aio_list_jobs_iterates_every_page(server):
    async with aio.Client(server.addr) as c:
        await c.submit_many(
            [{"task": "lj", "name": f"p{i:02}", "priority": i % 3} for i in range(25)]
        )
        names = [j.name async for j in c.list_jobs("lj", state="pending", page_size=7)]
        assert len(names) == 25 and len(set(names)) == 25
        page = await c.list_jobs_page("lj", page_size=30)
        assert isinstance(page, aio.JobPage) and len(page.jobs) == 25
        assert page.next_page_token == ""
        with pytest.raises(aio.InvalidArgumentError, match="page_size"):
            await c.list_jobs_page("lj", page_size=5000)
