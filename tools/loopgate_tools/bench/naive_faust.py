"""The floor the detector must beat: a minimal faust agent that only validates each event.

Run as `python -m loopgate_tools.bench.naive_faust BOOTSTRAP GROUP COUNT PREFIX SOURCE...` (SOURCE: a
contract topic name, read as PREFIX+SOURCE); writes one JSON line to stdout once it has validated
COUNT events, then exits.
"""

from __future__ import annotations

import os
import sys
import time

import faust
import orjson

from loopgate_schemas.events import EventRejected, parse_event


def main() -> None:
    bootstrap, group, count_arg, prefix, *sources = sys.argv[1:]
    count = int(count_arg)
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        datadir=f"/tmp/{group}",
    )
    state = {"n": 0, "started": 0.0}

    for source_name in sources:
        topic = app.topic(prefix + source_name, key_serializer="raw", value_serializer="raw")

        @app.agent(topic, name=f"validate-{source_name}")
        async def validate(stream: faust.StreamT[bytes], source: str = source_name) -> None:
            async for value in stream:
                if not state["n"]:
                    state["started"] = time.perf_counter()
                try:
                    parse_event(source, value)
                except EventRejected:
                    pass
                state["n"] += 1
                if state["n"] >= count:
                    elapsed = time.perf_counter() - state["started"]
                    # fd 1 itself: the faust worker redirects sys.stdout into its logger
                    os.write(1, orjson.dumps({"events": state["n"], "seconds": elapsed}) + b"\n")
                    os._exit(0)

    sys.argv = [sys.argv[0], "worker", "-l", "error"]
    app.main()


if __name__ == "__main__":
    main()
