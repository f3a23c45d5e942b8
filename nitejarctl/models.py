"""The schema, once: Peewee models of nitejar's tables.

Migrations generate their DDL from these models, `doctor` compares the live
database with them, and the repositories query through them. `server_default`
is the column's SQL default (`NOW` is the dialect's current Unix time); the
tool itself always writes times explicitly, so that "now" is the Python clock.
"""

import peewee as pw

database_proxy = pw.DatabaseProxy()

NOW = "now"


class _ServerDefault:
    def __init__(self, *args, server_default=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.server_default = server_default


class Text(_ServerDefault, pw.TextField):
    pass


class Integer(_ServerDefault, pw.IntegerField):
    def python_value(self, value):
        # SQLite keeps what it is given: nitejar's databases may hold text
        # ('2024-01-01') in an integer column. It is shown as it is.
        if value is None or type(value) is int:
            return value
        try:
            return int(value)
        except (TypeError, ValueError):
            return value


class Real(_ServerDefault, pw.FloatField):
    pass


class Blob(_ServerDefault, pw.BlobField):
    pass


def Reference(model, column, on_delete=None, null=False):
    return pw.ForeignKeyField(model, field="id", column_name=column, on_delete=on_delete,
                              null=null, lazy_load=False, index=False)


def now_column():
    return Integer(server_default=NOW)


class BaseModel(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False
        # (index name, column names): the schema's named indexes.
        named_indexes = ()


class Agent(BaseModel):
    id = Text(primary_key=True)
    name = Text(unique=True)
    sprite_id = Text(null=True)
    config = Text(null=True)
    status = Text(server_default="idle")
    created_at = now_column()
    updated_at = now_column()

    class Meta:
        table_name = "agents"


class Integration(BaseModel):
    id = Text(primary_key=True)
    type = Text()
    name = Text()
    config = Text(null=True)
    scope = Text(server_default="global")
    enabled = Integer(server_default=1)
    created_at = now_column()
    updated_at = now_column()

    class Meta:
        table_name = "integrations"


class AgentIntegration(BaseModel):
    agent_id = Reference(Agent, "agent_id", on_delete="CASCADE")
    integration_id = Reference(Integration, "integration_id", on_delete="CASCADE")
    created_at = now_column()

    class Meta:
        table_name = "agent_integrations"
        primary_key = pw.CompositeKey("agent_id", "integration_id")


class WorkItem(BaseModel):
    id = Text(primary_key=True)
    integration_id = Reference(Integration, "integration_id", null=True)
    session_key = Text()
    source = Text()
    source_ref = Text()
    status = Text(server_default="NEW")
    title = Text()
    payload = Text(null=True)
    created_at = now_column()
    updated_at = now_column()

    class Meta:
        table_name = "work_items"
        named_indexes = (
            ("idx_work_items_integration", ("integration_id",)),
            ("idx_work_items_status", ("status",)),
            ("idx_work_items_session_key", ("session_key",)),
        )


class Job(BaseModel):
    id = Text(primary_key=True)
    work_item_id = Reference(WorkItem, "work_item_id", on_delete="CASCADE")
    agent_id = Reference(Agent, "agent_id", on_delete="CASCADE")
    status = Text(server_default="PENDING")
    error_text = Text(null=True)
    started_at = Integer(null=True)
    completed_at = Integer(null=True)
    created_at = now_column()
    updated_at = now_column()

    class Meta:
        table_name = "jobs"
        named_indexes = (
            ("idx_jobs_work_item", ("work_item_id",)),
            ("idx_jobs_agent", ("agent_id",)),
        )


class Message(BaseModel):
    id = Text(primary_key=True)
    job_id = Reference(Job, "job_id", on_delete="CASCADE")
    role = Text()
    content = Text(null=True)
    embedding = Blob(null=True)
    created_at = now_column()

    class Meta:
        table_name = "messages"
        named_indexes = (("idx_messages_job", ("job_id",)),)


class AgentMemory(BaseModel):
    id = Text(primary_key=True)
    agent_id = Reference(Agent, "agent_id", on_delete="CASCADE")
    content = Text()
    embedding = Blob(null=True)
    strength = Real(server_default=1.0)
    access_count = Integer(server_default=0)
    permanent = Integer(server_default=0)
    last_accessed_at = Integer(null=True)
    created_at = now_column()
    updated_at = now_column()

    class Meta:
        table_name = "agent_memories"
        named_indexes = (
            ("idx_agent_memories_agent", ("agent_id",)),
            ("idx_agent_memories_strength", ("agent_id", "strength")),
        )


class SessionSummary(BaseModel):
    id = Text(primary_key=True)
    session_key = Text()
    agent_id = Reference(Agent, "agent_id", on_delete="CASCADE")
    summary = Text()
    turn_count = Integer()
    start_time = Integer()
    end_time = Integer()
    embedding = Blob(null=True)
    compacted_at = now_column()

    class Meta:
        table_name = "session_summaries"
        named_indexes = (
            ("idx_session_summaries_session_key", ("session_key",)),
            ("idx_session_summaries_agent", ("agent_id",)),
        )


class SpriteSession(BaseModel):
    id = Text(primary_key=True)
    sprite_name = Text()
    session_id = Text()
    session_key = Text()
    agent_id = Text()
    status = Text(server_default="active")
    created_at = now_column()
    last_active_at = now_column()

    class Meta:
        table_name = "sprite_sessions"
        named_indexes = (
            ("idx_sprite_sessions_session_key_agent", ("session_key", "agent_id")),
            ("idx_sprite_sessions_status", ("status",)),
            ("idx_sprite_sessions_sprite_name", ("sprite_name",)),
        )


class IdempotencyKey(BaseModel):
    key = Text(primary_key=True)
    work_item_id = Reference(WorkItem, "work_item_id", on_delete="CASCADE", null=True)
    created_at = now_column()

    class Meta:
        table_name = "idempotency_keys"


MODELS = (Agent, Integration, AgentIntegration, WorkItem, Job, Message, AgentMemory,
          SessionSummary, SpriteSession, IdempotencyKey)

# Tables nitejarctl maintains on a database that nitejar's own migrator created
# (which has plugin_instances / agent_plugin_instances instead of integrations).
NITEJAR_MAINTAINED = (Agent, WorkItem, Job, Message, AgentMemory, SessionSummary,
                      SpriteSession, IdempotencyKey)
