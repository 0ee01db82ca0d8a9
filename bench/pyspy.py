"""A summary of py-spy's raw stacks: self time and the gateway's own inclusive time.

(Named `pyspy`, not `profile`, which would shadow the standard library's module.)
"""

from __future__ import annotations

import re
from collections import Counter


def _frame_key(frame: str) -> tuple[str, bool]:
    """'function (path/file.py:123)' -> ('path/file.py:function', is_ours)."""
    m = re.match(r"^(.*) \((.*?):\d+\)$", frame.strip())
    if not m:
        return frame.strip(), False
    function, path = m.groups()
    ours = "llm_wrapper" in path
    if ours:
        path = "src/llm_wrapper/" + path.split("llm_wrapper/", 1)[-1]
    else:
        path = re.sub(r"^.*/(site-packages|python3\.\d+)/", "", path)
    return f"{path}:{function}", ours


# Start-up frames under every event-loop sample: not worth listing.
ENTRY_FRAMES = {
    "src/llm_wrapper/cli/__init__.py:main",
    "src/llm_wrapper/cli/serve.py:serve",
    "src/llm_wrapper/server.py:serve",
}


def summarise_profile(text: str) -> dict[str, object]:
    """Self and inclusive shares of samples from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    ours_inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f]
        if frames and (thread := re.match(r"^thread \(\w+\):?\s*(.*)$", frames[0])):
            threads[thread.group(1) or "unnamed"] += n
            frames = frames[1:]
        keys = [_frame_key(f) for f in frames]
        if not keys:
            continue
        own[keys[-1][0]] += n
        for key, ours in set(keys):
            if ours and key not in ENTRY_FRAMES:
                ours_inclusive[key] += n
    total = max(1, total)

    def top(counts: Counter[str], n: int = 15) -> list[tuple[str, float]]:
        return [(k, v * 100 / total) for k, v in counts.most_common(n)]

    return {
        "samples": total,
        "threads": top(threads, 5),
        "self": top(own),
        "ours_inclusive": top(ours_inclusive),
    }
