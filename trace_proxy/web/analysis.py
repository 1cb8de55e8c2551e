"""What a trace's spans add up to: its critical path, per-operation statistics and the
difference between two traces. Plain functions over Zipkin v2 span dicts, no store access."""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

from trace_proxy.store.query import service_name


def _start(span: dict) -> int:
    return span.get("timestamp") or 0


def _end(span: dict) -> int:
    return _start(span) + (span.get("duration") or 0)


def children_of(spans: Sequence[dict]) -> dict[str, list[dict]]:
    ids = {s.get("id") for s in spans}
    kids: dict[str, list[dict]] = defaultdict(list)
    for s in spans:
        parent = s.get("parentId")
        if parent in ids and parent != s.get("id"):
            kids[parent].append(s)
    return kids


# -- critical path ------------------------------------------------------------------------


def critical_path(spans: Sequence[dict], root: dict | None) -> dict[str, list[tuple[int, int]]]:
    """Jaeger's critical path: the sections (start, end in µs) of each span that determined
    the trace's end, by span id. From the root's end, the last child to finish before the
    point reached so far is followed down; a parent's time not covered by such a child is its
    own. Children overlapping the child already on the path are skipped (they ran alongside);
    children are clipped to their parent's window first, as Jaeger does."""
    if root is None:
        return {}
    kids = children_of(spans)
    sections: dict[str, list[tuple[int, int]]] = defaultdict(list)

    def clipped(parent_window: tuple[int, int], span: dict) -> tuple[int, int] | None:
        start, end = max(_start(span), parent_window[0]), min(_end(span), parent_window[1])
        return (start, end) if start <= end else None

    # Work items: (span, its clipped window, the start of the path child it returns to or None).
    stack = [(root, (_start(root), _end(root)))]
    seen: set[str] = set()
    while stack:
        span, (start, end) = stack.pop()
        if span.get("id") in seen:  # a cycle in parent ids: stop there
            continue
        seen.add(span.get("id"))
        windows = [(w, c) for c in kids.get(span.get("id"), []) if (w := clipped((start, end), c))]
        windows.sort(key=lambda item: item[0][1], reverse=True)  # last to finish first
        cursor = end
        path_children = []
        while True:
            nxt = next(((w, c) for w, c in windows
                        if (w[1] < cursor if path_children else w[1] <= cursor)), None)
            if nxt is None:
                break
            (c_start, c_end), child = nxt
            if c_end < cursor:
                sections[span["id"]].append((c_end, cursor))
            path_children.append((child, (c_start, c_end)))
            cursor = c_start
        if cursor > start or not path_children:
            sections[span["id"]].append((start, cursor))
        stack.extend(path_children)
    return dict(sections)


# -- statistics ---------------------------------------------------------------------------


@dataclass
class OperationStats:
    service: str
    name: str
    count: int
    total_us: int
    self_us: int
    min_us: int
    max_us: int
    share: float  # self time as a share of the trace's duration, 0..1

    @property
    def avg_us(self) -> float:
        return self.total_us / self.count if self.count else 0.0


def statistics(spans: Sequence[dict], selfs: dict[int, int], trace_us: int) -> list[OperationStats]:
    """Per service and span name: count, total, self time (`selfs` by id(span)), min, max and
    the share of the trace's duration spent in its own time; most self time first."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for span in spans:
        groups[(service_name(span) or "?", span.get("name") or "?")].append(span)
    rows = []
    for (service, name), members in groups.items():
        durations = [m.get("duration") or 0 for m in members]
        own = sum(selfs.get(id(m), 0) for m in members)
        rows.append(OperationStats(service, name, len(members), sum(durations), own, min(durations),
                                   max(durations), own / trace_us if trace_us else 0.0))
    rows.sort(key=lambda r: (-r.self_us, r.service, r.name))
    return rows


# -- compare ------------------------------------------------------------------------------

_INSTANCE = re.compile(r"-(\d+|[0-9a-f]{6,10}-[0-9a-z]{5})$")


def service_group(name: str) -> str:
    """An instance's service: service1-0 → service1 (local or a StatefulSet's pod),
    service1-6d4cf56db6-x2x9q → service1 (a Deployment's pod); other names as they are."""
    return _INSTANCE.sub("", name) or name


@dataclass
class Matched:
    path: str  # the labels from the root, joined by " › ": how spans are matched
    depth: int
    a_us: int | None  # summed duration of the spans at this path in A (None: not in A)
    b_us: int | None
    a_self_us: int
    b_self_us: int
    a_count: int
    b_count: int

    @property
    def label(self) -> str:
        return self.path.rsplit(" › ", 1)[-1]

    @property
    def diff_us(self) -> int:
        return (self.b_us or 0) - (self.a_us or 0)

    @property
    def self_diff_us(self) -> int:
        return self.b_self_us - self.a_self_us

    @property
    def only(self) -> str:
        return "a" if self.b_us is None else "b" if self.a_us is None else ""


def _paths(spans: Sequence[dict], label: Callable[[dict], tuple[str, str]], selfs: dict[int, int]) -> dict[str, list[int]]:
    """path → [depth, total duration µs, self µs, count], the path being the labels from the root.
    A span's label is label(span)'s name, with its detail only where siblings share that name:
    the requests /echo/friend and /echo/earth match as two runs of one request, while a
    parent's five calls to /stage/0…4 stay five."""
    kids = children_of(spans)
    ids = {s.get("id") for s in spans}
    roots = [s for s in spans if s.get("parentId") not in ids or s.get("parentId") == s.get("id")]
    out: dict[str, list[int]] = {}
    stack = [(0, "", span, shown) for span, shown in _labelled(roots, label)]
    seen: set[int] = set()
    while stack:
        depth, prefix, span, shown = stack.pop()
        if id(span) in seen:
            continue
        seen.add(id(span))
        path = f"{prefix} › {shown}" if prefix else shown
        entry = out.setdefault(path, [depth, 0, 0, 0])
        entry[1] += span.get("duration") or 0
        entry[2] += selfs.get(id(span), 0)
        entry[3] += 1
        stack.extend((depth + 1, path, c, text) for c, text in _labelled(kids.get(span.get("id"), []), label))
    return out


def _labelled(siblings: Sequence[dict], label: Callable[[dict], tuple[str, str]]) -> list[tuple[dict, str]]:
    """Each sibling with its label: its name, and its detail too where another sibling has that name."""
    labels = [label(s) for s in siblings]
    names = Counter(name for name, _ in labels)
    return [(s, f"{name} {detail}".strip() if names[name] > 1 else name) for s, (name, detail) in zip(siblings, labels)]


def compare(a: Sequence[dict], b: Sequence[dict], label: Callable[[dict], tuple[str, str]],
            self_times: Callable[[Sequence[dict]], dict[int, int]]) -> list[Matched]:
    """The two trees aligned by the path of `label(span)` from the root; a path only in one
    side marked. Sorted by what explains the difference: the change in self time (a parent's
    total includes its children's change, its self time does not), biggest first."""
    pa, pb = _paths(a, label, self_times(a)), _paths(b, label, self_times(b))
    rows = []
    for path in pa.keys() | pb.keys():
        ea, eb = pa.get(path), pb.get(path)
        rows.append(Matched(path, (ea or eb)[0], ea[1] if ea else None, eb[1] if eb else None,
                            ea[2] if ea else 0, eb[2] if eb else 0, ea[3] if ea else 0, eb[3] if eb else 0))
    rows.sort(key=lambda r: (-abs(r.self_diff_us), -abs(r.diff_us), r.path))
    return rows
