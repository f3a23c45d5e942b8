"""Maintenance: what nitejarctl does to a nitejar database beyond one table's
queries — memory decay and pruning (memory_policy, decay, prune), compaction
of idle conversations (turns, summarizer, compaction) and nitejar's cleanup.
Built on the repositories and db.batches; knows nothing of Click or Rich."""
