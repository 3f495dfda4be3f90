"""Several OS processes on one SQLite file: the embedded store's promise for one host."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from shared.storage.sqlite import DB_FILE_NAME, SQLiteStore

ROOT = str(Path(__file__).resolve().parents[2])  # the workers import shared/ from here
PROCESSES = 4
INCREMENTS = 25

# Each worker adds INCREMENTS to a shared counter by read + compare_and_set, retrying when it
# loses a race; it also races once for a lease. Run as `python -c WORKER path name`.
WORKER = """
import asyncio, sys
from pathlib import Path
from shared.storage.sqlite import SQLiteStore

async def main(path: str, name: str, increments: int) -> None:
    store = SQLiteStore(Path(path), ["counters", "leases"])
    await store.start()
    won = await store.insert_if_absent("leases", "suite", {"holder": name}, ttl=60)
    print("lease" if won else "no-lease")
    done = 0
    while done < increments:
        record = await store.get_record("counters", "n")
        assert record is not None
        value = record.doc["value"] + 1
        if await store.compare_and_set("counters", "n", record.version, {"value": value}):
            done += 1
    await store.stop()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_processes_sharing_the_file_lose_no_update(tmp_path: Path) -> None:
    """Concurrent writers in separate processes: every increment lands, one lease holder."""
    path = tmp_path / DB_FILE_NAME
    store = SQLiteStore(path, ["counters", "leases"])
    await store.start()
    await store.put("counters", "n", {"value": 0})
    started = time.monotonic()
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            str(path),
            f"worker-{i}",
            str(INCREMENTS),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        for i in range(PROCESSES)
    ]
    outputs = [await asyncio.wait_for(worker.communicate(), 30) for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * PROCESSES
    assert sorted(out.decode().strip() for out, _ in outputs).count("lease") == 1
    assert await store.get("counters", "n") == {"value": PROCESSES * INCREMENTS}
    assert time.monotonic() - started < 30
    await store.stop()
