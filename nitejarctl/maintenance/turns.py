"""A conversation's turns, nitejar's default summary of them, and what
compaction made of each conversation (its Outcome).

A user message opens a turn, the next assistant message closes it; system
and tool messages, and messages without text, take no part.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from nitejarctl.repositories import messages

SKIPPED_ROLES = ("system", "tool")
TOPIC_TURNS = 5
TOPIC_CHARS = 50


def default_summary(topics: list[str], turn_count: int) -> str:
    """nitejar's generateDefaultSummary: the first 50 characters of the user
    message of each of the first five turns ("..." when longer), then how
    many more exchanges there were."""
    parts = [t[:TOPIC_CHARS] + ("..." if len(t) > TOPIC_CHARS else "") for t in topics[:TOPIC_TURNS]]
    more = turn_count - TOPIC_TURNS
    return "Conversation topics: " + "; ".join(parts) + (f" (and {more} more exchanges)" if more > 0 else "")


class Conversation:
    """The turns of one conversation, fed its messages in history order."""

    __slots__ = ("seq", "session_key", "agent_id", "start_time", "end_time", "turn_count",
                 "topics", "_open", "transcript", "size")

    def __init__(self, seq, session_key, agent_id, *, keep_transcript=False):
        self.seq, self.session_key, self.agent_id = seq, session_key, agent_id
        self.start_time = self.end_time = None
        self.turn_count = 0
        self.topics: list[str] = []
        self._open: str | None = None
        self.transcript: list[str] | None = [] if keep_transcript else None
        self.size = 0

    def add(self, role: str, content, created_at: int) -> None:
        if self.start_time is None or created_at < self.start_time:
            self.start_time = created_at
        if self.end_time is None or created_at > self.end_time:
            self.end_time = created_at
        if role in SKIPPED_ROLES:
            return
        text = messages.message_text(content)
        if self.transcript is not None:
            line = f"{role}: {text}"
            self.transcript.append(line)
            self.size += len(line) + 1
        if not text:
            return
        if role == "user":
            # A topic needs one character more than it shows, to know if it is longer.
            self._open = text[:TOPIC_CHARS + 1]
        elif role == "assistant" and self._open is not None:
            self.turn_count += 1
            if len(self.topics) < TOPIC_TURNS:
                self.topics.append(self._open)
            self._open = None

    def transcript_text(self) -> str:
        return "".join(line + "\n" for line in self.transcript or ())


def compaction_disabled(config) -> bool:
    """True when an agent's config sets sessionSettings.compaction.enabled to false."""
    if not config:
        return False
    try:
        parsed = json.loads(config)
    except (TypeError, ValueError):
        return False
    node = parsed
    for key in ("sessionSettings", "compaction", "enabled"):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return node is False


SKIP_DISABLED = "compaction disabled in the agent's config"
SKIP_NO_TURN = "no complete turn (user message answered by the assistant)"
SKIP_NOT_IDLE = "no longer idle (a newer message arrived)"
SKIP_ALREADY = "already compacted (by a concurrent run)"


# -------------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    """What happened to one conversation: compacted, skipped or failed."""

    status: str
    session_key: str
    agent_id: str
    turn_count: int | None = None
    reason: str | None = None
    id: str | None = None
    summary: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    compacted_at: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)
