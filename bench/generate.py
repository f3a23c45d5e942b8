"""Generate a nitejar database for the benchmarks.

    python bench/generate.py --scale small|large --out PATH [--keys random|ordered] [--seed N] [--force]

The schema comes from `nitejarctl migrate` (so the file is in WAL mode, as
nitejar's databases are); the rows are loaded with the standard library's
sqlite3 module. Every time is relative to the clock at generation ("T0",
recorded in PATH.meta.json); `bench/run.py` shifts the data forward to its own
clock before each measurement ("rebase").

Around each cutoff a benchmark uses (stale 1h, purge 1d, idle 30m, idempotency
30d, the decay threshold) the data leaves a gap of GAP seconds: a command run
at any moment within GAP seconds after T0 selects exactly the same rows, so
nitejarctl and the baseline, run one after the other, do exactly the same work.

Ids are random UUIDs (version 4), as nitejar writes them; `--keys ordered`
gives the sprite sessions and memories time-ordered ones instead (version 7,
from their creation time, in insertion order), the other key shape bulk
changes must handle as well.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import time

MINUTE, HOUR, DAY = 60, 3600, 86400
GAP = 20 * MINUTE
MARGIN = 2 * MINUTE

SCALES = {
    "large": {"agents": 50, "sessions": 1_000_000, "conversations": 10_000,
              "memories": 500_000, "idempotency_keys": 200_000},
    "small": {"agents": 50, "sessions": 10_000, "conversations": 100,
              "memories": 5_000, "idempotency_keys": 2_000},
    # The reliability tests' size in CI (tests/test_reliability.py): each maintenance
    # command takes a few seconds; more active sessions, so that closing stale ones does too.
    "ci": {"agents": 50, "sessions": 200_000, "conversations": 2_000,
           "memories": 100_000, "idempotency_keys": 20_000, "active_share": 0.4},
}
WORK_ITEMS_PER_CONVERSATION = 10
MESSAGES_PER_JOB = 10  # 10 completed jobs x 10 = 100 messages per conversation
ACTIVE_SHARE = 0.10
IDLE_SHARE = 0.80

WORDS = (
    "deploy build sprite session agent memory config database index query cache "
    "server client token error retry timeout queue worker branch commit review merge "
    "release ticket customer invoice report schedule meeting budget forecast metric "
    "latency throughput backup restore migrate schema table column row cursor stream "
    "please could you check why the what when where how is are was were can should "
    "would will today tomorrow yesterday again still already failing works broken "
    "thanks great sure okay here there this that these those my your our their "
    "résumé naïve café über straße ångström déjà vu"
).split()
HOSTILE = [
    "[bold]not markup[/] and [red]x[/red]", "50% done; 100%% sure", "it's \"quoted\" 'twice'",
    "'; DROP TABLE agents; --", ":smile: emoji 🚀🔥 in text", "tab\tand\nnewline",
    "back\\slash and ${HOME} and $(whoami)", "x" * 2000,
]
SOURCES = ("telegram", "github", "slack")
ERRORS = ("sprite exec timed out after 300s", "model returned 529 overloaded",
          "tool 'bash' exited with status 1", "cancelled by operator")


class Gen:
    def __init__(self, seed: int, t0: int):
        self.rng = random.Random(seed)
        self.t0 = t0
        rng = self.rng
        self.user_texts = [self._sentence(4, 30) + "?" for _ in range(4000)]
        self.assistant_texts = [self._sentence(10, 60) + "." for _ in range(4000)]
        self.memory_texts = [self._sentence(5, 25) for _ in range(4000)]
        for i, text in enumerate(HOSTILE):
            self.user_texts[i * 97] = text
            self.memory_texts[i * 89] = text
        self.sentence_count = len(self.user_texts)
        self._bits = rng.getrandbits

    def _sentence(self, lo: int, hi: int) -> str:
        words = self.rng.choices(WORDS, k=self.rng.randint(lo, hi))
        return " ".join(words).capitalize()

    def uid(self) -> str:
        h = f"{self._bits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def ordered_uid(self, seconds: int, n: int) -> str:
        """A version 7 UUID: the time (ms; `n` spreads rows of one second) first."""
        h = f"{seconds * 1000 + n % 1000:012x}{self._bits(80):020x}"
        return f"{h[:8]}-{h[8:12]}-7{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def reorder_ids(self, rows: list, created: int) -> list:
        """`rows` (sorted by creation) with time-ordered ids in place of their first field."""
        return [(self.ordered_uid(row[created], n), *row[1:]) for n, row in enumerate(rows)]

    def between(self, lo: float, hi: float, gap: tuple[float, float] | None = None) -> int:
        """Uniform in [lo, hi], skipping the interval `gap` when given."""
        if gap is None:
            return int(self.rng.uniform(lo, hi))
        width = gap[1] - gap[0]
        value = self.rng.uniform(lo, hi - width)
        if value >= gap[0]:
            value += width
        return int(value)


def run_migrate(path: str) -> None:
    done = subprocess.run(["nitejarctl", "-d", path, "-q", "migrate"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"nitejarctl migrate failed ({done.returncode}): {done.stderr.strip()}")


def insert(conn: sqlite3.Connection, table: str, columns: tuple[str, ...], rows, chunk=50_000):
    sql = f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})'
    for start in range(0, len(rows), chunk):
        with conn:
            conn.executemany(sql, rows[start:start + chunk])
    return len(rows)


# ------------------------------------------------------------------ generators


def make_agents(g: Gen, count: int):
    rates = (0.05, 0.2, 0.25, 0.5)
    caps = (2000, 5000, 10000, 20000, 50000)
    rows = []
    for i in range(count):
        config: dict = {"model": g.rng.choice(("claude-sonnet-4", "gpt-4.1", "claude-haiku-4")),
                        "systemPrompt": f"You are agent {i}, a helpful operator."}
        memory: dict = {}
        if i % 5 == 1:
            memory["decayRate"] = rates[(i // 5) % len(rates)]
        if i % 5:  # most agents raise nitejar's default cap of 200 memories
            memory["maxStoredMemories"] = caps[(i + i // 5) % len(caps)]
        if i % 3 == 0:
            memory["minStrength"] = 0.1
        if i == 45:
            memory["decayRate"] = "fast"  # invalid: the default applies
        if i == 46:
            memory["maxStoredMemories"] = -5  # invalid: the default applies
        if memory:
            config["memorySettings"] = memory
        if i in (7, 23, 41):
            config["sessionSettings"] = {"compaction": {"enabled": False}}
        elif i % 4 == 0:
            config["sessionSettings"] = {"compaction": {"enabled": True}}
        created = g.t0 - g.between(30 * DAY, 400 * DAY)
        rows.append((g.uid(), f"agent-{i:02d}", f"sprite-{i:02d}", json.dumps(config),
                     g.rng.choice(("idle", "idle", "busy", "offline")), created,
                     created + g.between(0, 20 * DAY)))
    return rows


def make_integrations(g: Gen):
    rows = []
    for source in SOURCES:
        created = g.t0 - 500 * DAY
        rows.append((g.uid(), source, f"{source}-main", json.dumps({"token": "redacted"}),
                     "global", 1, created, created))
    return rows


def role_patterns():
    u, a, t, s = "user", "assistant", "tool", "system"
    plain = (u, a) * 5
    with_tools = (u, t, a, u, a, u, a, u, t, a)
    with_system = (s, u, a, u, t, a, u, a, u, a)
    return plain, with_tools, with_system


def text_content(g: Gen, text: str) -> str:
    roll = g.rng.random()
    if roll < 0.85:
        return json.dumps({"text": text}, ensure_ascii=False)
    if roll < 0.93:
        return json.dumps({"content": text, "model": "claude-sonnet-4"}, ensure_ascii=False)
    if roll < 0.98:
        return "Raw: " + text  # not JSON: the text itself
    return json.dumps({"text": text, "attachments": [{"type": "image", "id": g.uid()}]},
                      ensure_ascii=False)


def make_conversations(g: Gen, count: int, agents, integrations):
    """Work items, jobs, messages and earlier summaries of `count` conversations.
    Returns (work_items, jobs, messages, summaries, conversations)."""
    rng = g.rng
    plain, with_tools, with_system = role_patterns()
    integration_of = {row[1]: row[0] for row in integrations}
    agent_ids = [row[0] for row in agents]
    work_items, jobs, messages, summaries, conversations = [], [], [], [], []
    keys = []
    idle_hi = g.t0 - 30 * MINUTE - GAP - MARGIN
    recent = (g.t0 - 30 * MINUTE + GAP + MARGIN, g.t0 - 30)
    for c in range(count):
        agent = rng.choice(agent_ids)
        if c >= 10 and rng.random() < 0.15:
            # a second agent in an existing chat
            key, first_agent = keys[rng.randrange(len(keys))]
            while agent == first_agent:
                agent = rng.choice(agent_ids)
        else:
            source = rng.choice(SOURCES)
            key = {"telegram": f"telegram:chat:{100000 + c}",
                   "github": f"github:nitejar/app#{c}",
                   "slack": f"slack:C{c:07d}"}[source]
            keys.append((key, agent))
        source = key.split(":", 1)[0]
        idle = rng.random() < IDLE_SHARE
        last = g.between(g.t0 - 10 * DAY, idle_hi) if idle else g.between(*recent)
        # Message times, forward from an arbitrary start, then shifted so the
        # newest completed message is `last`.
        times, job_starts = [], []
        t = 0
        for w in range(WORK_ITEMS_PER_CONVERSATION):
            t += rng.randint(60, 6 * HOUR) if w else 0
            job_starts.append(t)
            for _ in range(MESSAGES_PER_JOB):
                t += rng.randint(2, 90)
                times.append(t)
        shift = last - times[-1]
        times = [x + shift for x in times]
        job_starts = [x + shift for x in job_starts]
        has_system = rng.random() < 0.3
        first_user_text = None
        for w in range(WORK_ITEMS_PER_CONVERSATION):
            wi_id = g.uid()
            start = job_starts[w]
            wi_created = start - 30
            user_text = g.user_texts[rng.randrange(g.sentence_count)]
            first_user_text = first_user_text or user_text
            work_items.append((
                wi_id, integration_of[source], key, source, f"{key}:{w}", "DONE",
                user_text[:60], json.dumps({"text": user_text, "sender": f"user{c % 997}"},
                                           ensure_ascii=False),
                wi_created, times[(w + 1) * MESSAGES_PER_JOB - 1] + 1))
            if rng.random() < 0.15:
                failed = g.uid()
                jobs.append((failed, wi_id, agent, "FAILED", rng.choice(ERRORS), wi_created + 1,
                             wi_created + 9, wi_created + 1, wi_created + 9))
                messages.append((g.uid(), failed, "user", text_content(g, user_text), wi_created + 2))
                messages.append((g.uid(), failed, "assistant",
                                 json.dumps({"text": "Working on it"}), wi_created + 3))
            elif rng.random() < 0.03:
                jobs.append((g.uid(), wi_id, agent, "CANCELLED", "cancelled by operator",
                             None, None, wi_created + 1, wi_created + 2))
            job_id = g.uid()
            final = times[(w + 1) * MESSAGES_PER_JOB - 1]
            jobs.append((job_id, wi_id, agent, "COMPLETED", None, start - 5, final + 1,
                         start - 5, final + 1))
            if w == 0 and has_system:
                pattern = with_system
            else:
                pattern = with_tools if rng.random() < 0.2 else plain
            opened = False
            for i, role in enumerate(pattern):
                at = times[w * MESSAGES_PER_JOB + i]
                if role == "user":
                    text = g.user_texts[rng.randrange(g.sentence_count)] if opened else user_text
                    opened = True
                    content = text_content(g, text)
                elif role == "assistant":
                    content = text_content(g, g.assistant_texts[rng.randrange(g.sentence_count)])
                elif role == "tool":
                    content = json.dumps({"tool": "bash", "exitCode": 0,
                                          "output": g.assistant_texts[rng.randrange(100)]})
                else:
                    content = json.dumps({"text": "You are a helpful operator."})
                messages.append((g.uid(), job_id, role, content, at))
        if not idle and rng.random() < 0.5:
            # a work item still being worked on: its messages do not count
            wi_id = g.uid()
            at = min(g.t0 - 5, last + rng.randint(5, 25))
            work_items.append((wi_id, integration_of[source], key, source,
                               f"{key}:{WORK_ITEMS_PER_CONVERSATION}", "RUNNING",
                               "in progress", None, at, at))
            running = g.uid()
            jobs.append((running, wi_id, agent, "RUNNING", None, at, None, at, at))
            messages.append((g.uid(), running, "user",
                             text_content(g, g.user_texts[rng.randrange(g.sentence_count)]), at + 1))
        roll = rng.random()
        if roll < 0.15:
            # compacted once, then the conversation went on: to be compacted again
            end = times[len(times) // 2]
            summaries.append((g.uid(), key, agent, "Conversation topics: " + first_user_text[:50],
                              25, times[0], end, end + 1800))
        elif roll < 0.20 and idle:
            summaries.append((g.uid(), key, agent, "Conversation topics: " + first_user_text[:50],
                              50, times[0], times[-1], times[-1] + 1800))
        conversations.append((key, agent))
    return work_items, jobs, messages, summaries, conversations


def make_sprite_sessions(g: Gen, count: int, agents, conversations, active_share: float = ACTIVE_SHARE):
    rng = g.rng
    t0 = g.t0
    names = {row[0]: row[1] for row in agents}
    agent_ids = list(names)
    statuses = rng.choices(("active", "closed", "error"),
                           (active_share, (1 - active_share) * 0.85, (1 - active_share) * 0.15), k=count)
    purge_gap = (t0 - DAY - MARGIN, t0 - DAY + GAP + MARGIN)
    rows = []
    for status in statuses:
        if rng.random() < 0.3:
            key, agent = conversations[rng.randrange(len(conversations))]
        else:
            agent = agent_ids[rng.randrange(len(agent_ids))]
            key = f"{rng.choice(SOURCES)}:chat:{rng.randrange(500_000)}"
        if status == "active":
            roll = rng.random()
            if roll < 0.25:  # touched within the hour: not stale
                last = g.between(t0 - HOUR + GAP + MARGIN, t0 - 1)
            elif roll < 0.85:  # touched within 4 h: stale
                last = g.between(t0 - 4 * HOUR, t0 - HOUR - MARGIN)
            else:  # forgotten
                last = g.between(t0 - 10 * DAY, t0 - 4 * HOUR)
            created = last - g.between(60, 2 * DAY)
        else:
            last = g.between(t0 - 10 * DAY, t0 - 1, purge_gap)
            created = last - g.between(30, 8 * HOUR)
        rows.append((g.uid(), f"sprite-{names[agent][-2:]}-{rng.randrange(3)}",
                     f"sess_{g._bits(64):016x}", key, agent, status, created, last))
    rows.sort(key=lambda r: r[6])
    return rows


def make_memories(g: Gen, count: int, agents):
    rng = g.rng
    t0 = g.t0
    agent_ids = [row[0] for row in agents]
    weights = [rng.uniform(0.2, 2.0) for _ in agent_ids]
    owners = rng.choices(agent_ids, weights, k=count)
    newest = t0 - 6 * HOUR  # nothing accessed or changed in the last 6 h (decay threshold)
    rows = []
    for agent in owners:
        if rng.random() < 0.9:
            accessed = g.between(t0 - 60 * DAY, newest)
            created = max(t0 - 120 * DAY, accessed - g.between(0, 30 * DAY))
            base = accessed
        else:
            accessed = None
            created = g.between(t0 - 60 * DAY, newest)
            base = created
        updated = base if rng.random() < 0.7 else g.between(base, newest)
        permanent = 1 if rng.random() < 0.05 else 0
        rows.append((g.uid(), agent, g.memory_texts[rng.randrange(g.sentence_count)],
                     rng.random(), int(rng.expovariate(0.2)), permanent, accessed, created,
                     updated))
    rows.sort(key=lambda r: r[7])
    return rows


def make_idempotency_keys(g: Gen, count: int, work_items):
    rng = g.rng
    t0 = g.t0
    gap = (t0 - 30 * DAY - MARGIN, t0 - 30 * DAY + GAP + MARGIN)
    recent_items = [row[0] for row in work_items if row[8] > t0 - 10 * DAY]
    rows = []
    for n in range(count):
        created = g.between(t0 - 90 * DAY, t0 - 1, gap)
        if n % 2:
            key = f"telegram:update:{10_000_000 + n}"
        else:
            key = f"github:delivery:{g.uid()}"
        item = None
        if recent_items and created > t0 - 10 * DAY and rng.random() < 0.5:
            item = recent_items[rng.randrange(len(recent_items))]
        rows.append((key, item, created))
    rows.sort(key=lambda r: r[2])
    return rows


# ---------------------------------------------------------------------- main


KEY_SHAPES = ("random", "ordered")


def generate(out: str, scale: str, seed: int, keys: str = "random") -> dict:
    shape = SCALES[scale]
    t0 = int(time.time())
    g = Gen(seed, t0)
    started = time.perf_counter()
    run_migrate(out)
    conn = sqlite3.connect(out, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    conn.execute("PRAGMA temp_store = MEMORY")
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.isolation_level = "DEFERRED"
    # Load without the secondary indexes, then build them by sorting.
    indexes = conn.execute("SELECT name, sql FROM sqlite_master "
                           "WHERE type = 'index' AND sql IS NOT NULL").fetchall()
    with conn:
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
    counts = {}

    def step(label, fn):
        began = time.perf_counter()
        result = fn()
        print(f"  {label:<18} {time.perf_counter() - began:6.1f}s", flush=True)
        return result

    def ordered(rows, created: int):
        return g.reorder_ids(rows, created) if keys == "ordered" else rows

    agents = make_agents(g, shape["agents"])
    integrations = make_integrations(g)
    counts["agents"] = insert(conn, "agents", ("id", "name", "sprite_id", "config", "status",
                                               "created_at", "updated_at"), agents)
    counts["integrations"] = insert(conn, "integrations", (
        "id", "type", "name", "config", "scope", "enabled", "created_at", "updated_at"), integrations)
    links = [(a[0], i[0], a[5]) for n, a in enumerate(agents) for i in integrations
             if (n + len(i[1])) % 3]
    counts["agent_integrations"] = insert(conn, "agent_integrations",
                                          ("agent_id", "integration_id", "created_at"), links)

    def conversations_step():
        work_items, jobs, messages, summaries, convs = make_conversations(
            g, shape["conversations"], agents, integrations)
        counts["work_items"] = insert(conn, "work_items", (
            "id", "integration_id", "session_key", "source", "source_ref", "status", "title",
            "payload", "created_at", "updated_at"), work_items)
        counts["jobs"] = insert(conn, "jobs", (
            "id", "work_item_id", "agent_id", "status", "error_text", "started_at",
            "completed_at", "created_at", "updated_at"), jobs)
        counts["messages"] = insert(conn, "messages",
                                    ("id", "job_id", "role", "content", "created_at"), messages)
        counts["session_summaries"] = insert(conn, "session_summaries", (
            "id", "session_key", "agent_id", "summary", "turn_count", "start_time", "end_time",
            "compacted_at"), summaries)
        return work_items, convs

    work_items, convs = step("conversations", conversations_step)
    counts["sprite_sessions"] = step("sprite_sessions", lambda: insert(
        conn, "sprite_sessions", ("id", "sprite_name", "session_id", "session_key", "agent_id",
                                  "status", "created_at", "last_active_at"),
        ordered(make_sprite_sessions(g, shape["sessions"], agents, convs,
                                     shape.get("active_share", ACTIVE_SHARE)), 6)))
    counts["agent_memories"] = step("agent_memories", lambda: insert(
        conn, "agent_memories", ("id", "agent_id", "content", "strength", "access_count",
                                 "permanent", "last_accessed_at", "created_at", "updated_at"),
        ordered(make_memories(g, shape["memories"], agents), 7)))
    counts["idempotency_keys"] = step("idempotency_keys", lambda: insert(
        conn, "idempotency_keys", ("key", "work_item_id", "created_at"),
        make_idempotency_keys(g, shape["idempotency_keys"], work_items)))

    def build_indexes():
        with conn:
            for _, sql in indexes:
                conn.execute(sql)

    step("indexes", build_indexes)
    conn.isolation_level = None
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    meta = {"scale": scale, "keys": keys, "seed": seed, "t0": t0, "gap": GAP, "journal_mode": journal,
            "counts": counts, "generated_in": round(time.perf_counter() - started, 1)}
    with open(meta_path(out), "w") as f:
        json.dump(meta, f, indent=2)
    return meta


def meta_path(db_path: str) -> str:
    return db_path + ".meta.json"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--out", required=True, help="database file to create")
    parser.add_argument("--keys", choices=KEY_SHAPES, default="random",
                        help="sprite session and memory ids: random (UUID v4, as nitejar's) or "
                             "ordered (time-ordered UUID v7)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        if not args.force:
            sys.exit(f"{args.out} exists (use --force to replace it)")
        for suffix in ("", "-wal", "-shm", ".meta.json"):
            if os.path.exists(args.out + suffix):
                os.remove(args.out + suffix)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    meta = generate(args.out, args.scale, args.seed, args.keys)
    size = os.path.getsize(args.out) / 1e6
    print(f"generated {args.scale} database {args.out} ({size:,.0f} MB, {args.keys} keys, "
          f"journal_mode={meta['journal_mode']}) in {meta['generated_in']}s")
    for table, n in meta["counts"].items():
        print(f"  {table:<20} {n:>10,}")


if __name__ == "__main__":
    main()
