"""Every table of the state store, in one place, so SQLite and Postgres share one migration path.

Times are UTC epoch seconds (float); structured values are JSON text.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = (
    'metadata',
    'schema_version',
    'runs',
    'delegations',
    'approvals',
    'journal',
    'ledger',
    'audit',
    'spans',
    'recordings',
    'guard_events',
    'workers',
    'model_attempts',
    'budget_usage',
    'budget_reservations',
    'eval_runs',
    'eval_results',
    'eval_cases',
)

metadata = sa.MetaData()

schema_version = sa.Table('proctor_schema_version', metadata, sa.Column('version', sa.Integer, nullable=False))

runs = sa.Table(
    'proctor_runs',
    metadata,
    sa.Column('run_id', sa.String(64), primary_key=True),
    sa.Column('team', sa.String(200), nullable=False),
    sa.Column('project', sa.String(200), nullable=False),
    sa.Column('data_class', sa.String(32), nullable=False),
    sa.Column('task', sa.Text, nullable=False),
    sa.Column('status', sa.String(16), nullable=False),  # running|waiting|succeeded|failed|cancelled|enqueued
    sa.Column('factory', sa.String(400)),  # 'module:callable' that rebuilds the team, for resume/replay
    sa.Column('workspace', sa.Text),
    sa.Column('started_at', sa.Float, nullable=False),
    sa.Column('finished_at', sa.Float),
    sa.Column('output', sa.Text),  # JSON
    sa.Column('error', sa.Text),
    sa.Column('input_tokens', sa.Integer, nullable=False, default=0),
    sa.Column('output_tokens', sa.Integer, nullable=False, default=0),
    sa.Column('requests', sa.Integer, nullable=False, default=0),
    sa.Column('cost_usd', sa.Float, nullable=False, default=0.0),
    sa.Column('trace_id', sa.String(32)),
    sa.Column('durable', sa.Boolean, nullable=False, default=True),
)

delegations = sa.Table(
    'proctor_delegations',
    metadata,
    sa.Column('delegation_id', sa.String(400), primary_key=True),  # a sub-team member's extends its lead's
    sa.Column('run_id', sa.String(64), nullable=False, index=True),
    sa.Column('seq', sa.Integer, nullable=False),
    sa.Column('agent_path', sa.String(400), nullable=False),
    sa.Column('specialist', sa.String(200), nullable=False),
    sa.Column('subtask', sa.Text, nullable=False),
    sa.Column('model_id', sa.String(200)),
    sa.Column('route_reason', sa.Text),
    sa.Column('status', sa.String(16), nullable=False),  # running|waiting|succeeded|failed
    sa.Column('output', sa.Text),  # JSON
    sa.Column('error', sa.Text),
    sa.Column('started_at', sa.Float, nullable=False),
    sa.Column('finished_at', sa.Float),
    sa.Column('input_tokens', sa.Integer, nullable=False, default=0),
    sa.Column('output_tokens', sa.Integer, nullable=False, default=0),
    sa.Column('requests', sa.Integer, nullable=False, default=0),
    sa.Column('cost_usd', sa.Float, nullable=False, default=0.0),
)

approvals = sa.Table(
    'proctor_approvals',
    metadata,
    sa.Column('approval_id', sa.String(64), primary_key=True),
    sa.Column('run_id', sa.String(64), nullable=False, index=True),
    sa.Column('workflow_id', sa.String(400)),  # the DBOS workflow waiting on it
    sa.Column('kind', sa.String(16), nullable=False, default='tool'),  # tool|in_doubt
    sa.Column('agent_path', sa.String(400), nullable=False),
    sa.Column('tool', sa.String(200), nullable=False),
    sa.Column('args', sa.Text, nullable=False),  # JSON
    sa.Column('data_class', sa.String(32), nullable=False),
    sa.Column('required_role', sa.String(64), nullable=False),
    sa.Column('reason_required', sa.Text),  # why the policy asked
    sa.Column('created_at', sa.Float, nullable=False),
    sa.Column('expires_at', sa.Float),
    sa.Column('status', sa.String(16), nullable=False),  # pending|approved|rejected|expired
    sa.Column('decider', sa.String(200)),
    sa.Column('decider_role', sa.String(64)),
    sa.Column('decided_at', sa.Float),
    sa.Column('reason', sa.Text),
)

journal = sa.Table(
    'proctor_journal',
    metadata,
    sa.Column('key', sa.String(400), primary_key=True),  # idempotency key (run, step, call)
    sa.Column('run_id', sa.String(64), nullable=False, index=True),
    sa.Column('agent_path', sa.String(400), nullable=False),
    sa.Column('tool', sa.String(200), nullable=False),
    sa.Column('args', sa.Text, nullable=False),
    sa.Column('status', sa.String(16), nullable=False),  # started|done|failed|in_doubt|skipped
    sa.Column('result', sa.Text),
    sa.Column('started_at', sa.Float, nullable=False),
    sa.Column('finished_at', sa.Float),
)

ledger = sa.Table(
    'proctor_ledger',
    metadata,
    sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('run_id', sa.String(64), nullable=False, index=True),
    sa.Column('team', sa.String(200), nullable=False),
    sa.Column('project', sa.String(200), nullable=False),
    sa.Column('specialist', sa.String(200), nullable=False),
    sa.Column('agent_path', sa.String(400), nullable=False),
    sa.Column('model_id', sa.String(200), nullable=False),
    sa.Column('input_tokens', sa.Integer, nullable=False),
    sa.Column('output_tokens', sa.Integer, nullable=False),
    sa.Column('cost_usd', sa.Float, nullable=False),
    sa.Column('created_at', sa.Float, nullable=False, index=True),
    # Added by the routing area: the model call's stable key (hooks re-run on recovery: one row per call).
    sa.Column('call_key', sa.String(400)),
    sa.Column('data_class', sa.String(32)),
    sa.Column('model_version', sa.String(100)),
)
sa.Index('ix_proctor_ledger_call_key', ledger.c.call_key, unique=True)

audit = sa.Table(
    'proctor_audit',
    metadata,
    sa.Column('seq', sa.Integer, primary_key=True, autoincrement=False),
    sa.Column('run_id', sa.String(64), index=True),
    sa.Column('kind', sa.String(32), nullable=False),  # model_call|approval_decision|...
    sa.Column('record', sa.Text, nullable=False),  # canonical JSON
    sa.Column('prev_hash', sa.String(64), nullable=False),
    sa.Column('hash', sa.String(64), nullable=False),
    sa.Column('created_at', sa.Float, nullable=False),
    # Idempotency key (e.g. 'model:<call key>'): a recovered run re-runs its hooks without re-appending.
    sa.Column('idem_key', sa.String(400)),
)
sa.Index('ix_proctor_audit_idem_key', audit.c.idem_key, unique=True)

spans = sa.Table(
    'proctor_spans',
    metadata,
    sa.Column('span_id', sa.String(16), primary_key=True),
    sa.Column('trace_id', sa.String(32), nullable=False, index=True),
    sa.Column('parent_id', sa.String(16)),
    sa.Column('run_id', sa.String(64), index=True),
    sa.Column('name', sa.String(400), nullable=False),
    sa.Column('kind', sa.String(16)),
    sa.Column('start_ns', sa.BigInteger, nullable=False),
    sa.Column('end_ns', sa.BigInteger),
    sa.Column('status', sa.String(16)),
    sa.Column('attributes', sa.Text),  # JSON
    sa.Column('events', sa.Text),  # JSON
    sa.Column('links', sa.Text),  # JSON
    sa.Column('resource', sa.Text),  # JSON
    sa.Column('scope', sa.String(200)),  # instrumentation scope name (for re-export)
)

recordings = sa.Table(
    'proctor_recordings',
    metadata,
    sa.Column('run_id', sa.String(64), primary_key=True),
    sa.Column('step', sa.String(400), primary_key=True),  # e.g. 'supervisor>coding#model:1'
    sa.Column('seq', sa.Integer, nullable=False),
    sa.Column('kind', sa.String(16), nullable=False),  # model|tool|guard|delegate
    sa.Column('payload', sa.Text, nullable=False),  # JSON
    sa.Column('created_at', sa.Float, nullable=False),
)

guard_events = sa.Table(
    'proctor_guard_events',
    metadata,
    sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('run_id', sa.String(64), nullable=False, index=True),
    sa.Column('agent_path', sa.String(400), nullable=False),
    sa.Column('hook', sa.String(16), nullable=False),  # input|output|tool_call|tool_output|memory_write
    sa.Column('guard', sa.String(200), nullable=False),
    sa.Column('decision', sa.String(16), nullable=False),  # allow|redact|block|approve
    sa.Column('reason', sa.Text),
    sa.Column('created_at', sa.Float, nullable=False),
    # Idempotency key ('<tool call key>|<hook>|<guard>'): a recovered run re-runs its tool hooks without re-recording.
    sa.Column('idem_key', sa.String(600)),
)
sa.Index('ix_proctor_guard_events_idem_key', guard_events.c.idem_key, unique=True)

workers = sa.Table(
    'proctor_workers',
    metadata,
    sa.Column('executor_id', sa.String(200), primary_key=True),  # the worker's DBOS executor id
    sa.Column('host', sa.String(200), nullable=False),
    sa.Column('pid', sa.Integer, nullable=False),
    sa.Column('queue', sa.String(200), nullable=False),
    sa.Column('concurrency', sa.Integer, nullable=False),
    sa.Column('status', sa.String(16), nullable=False),  # alive|stopped|recovering|recovered
    sa.Column('started_at', sa.Float, nullable=False),
    sa.Column('heartbeat_at', sa.Float, nullable=False),  # the database's clock, so hosts need not agree
    sa.Column('recovered_by', sa.String(200)),  # the live worker that took over its pending runs
    sa.Column('recovered_at', sa.Float),
    sa.Column('recovered_workflows', sa.Integer),
)

# Every attempt at a model call (the fallback chain's failures and the answer), keyed by call and order.
model_attempts = sa.Table(
    'proctor_model_attempts',
    metadata,
    sa.Column('call_key', sa.String(400), primary_key=True),
    sa.Column('seq', sa.Integer, primary_key=True, autoincrement=False),
    sa.Column('run_id', sa.String(64), nullable=False, index=True),
    sa.Column('agent_path', sa.String(400), nullable=False),
    sa.Column('specialist', sa.String(200), nullable=False),
    sa.Column('model_id', sa.String(200), nullable=False),
    sa.Column('tier', sa.Integer, nullable=False),  # 0: the routed chain; n: the n-th escalation
    sa.Column('status', sa.String(16), nullable=False),  # ok|failed|refused
    sa.Column('error', sa.Text),
    sa.Column('elapsed_ms', sa.Float, nullable=False),
    sa.Column('created_at', sa.Float, nullable=False),
)

# Budget state per scope ('project:acme', 'team:support@2025-06', 'run:<id>'): settled and reserved spend.
budget_usage = sa.Table(
    'proctor_budget_usage',
    metadata,
    sa.Column('scope', sa.String(400), primary_key=True),
    sa.Column('limit_usd', sa.Float),  # the limit last enforced (for display; the config is the source)
    sa.Column('limit_tokens', sa.BigInteger),
    sa.Column('spent_usd', sa.Float, nullable=False),
    sa.Column('spent_tokens', sa.BigInteger, nullable=False),
    sa.Column('reserved_usd', sa.Float, nullable=False),
    sa.Column('reserved_tokens', sa.BigInteger, nullable=False),
    sa.Column('updated_at', sa.Float, nullable=False),
)

# One reservation per model call (idempotent on the call key): reserved -> settled | released.
budget_reservations = sa.Table(
    'proctor_budget_reservations',
    metadata,
    sa.Column('call_key', sa.String(400), primary_key=True),
    sa.Column('run_id', sa.String(64), nullable=False, index=True),
    sa.Column('scopes', sa.Text, nullable=False),  # JSON list of the scopes reserved against
    sa.Column('usd', sa.Float, nullable=False),
    sa.Column('tokens', sa.BigInteger, nullable=False),
    sa.Column('status', sa.String(16), nullable=False),
    sa.Column('created_at', sa.Float, nullable=False),
    sa.Column('settled_at', sa.Float),
)

# Evaluation runs (`proctor eval run`): one row per run of a suite; `complete` only once every case of
# every model is recorded (the router reads complete runs only).
eval_runs = sa.Table(
    'proctor_eval_runs',
    metadata,
    sa.Column('run_id', sa.String(64), primary_key=True),
    sa.Column('suite', sa.String(200), nullable=False, index=True),
    sa.Column('subject', sa.String(200), nullable=False),  # the specialist or capability evaluated
    sa.Column('suite_path', sa.Text),
    sa.Column('suite_hash', sa.String(64), nullable=False),  # sha256 of the suite file as run
    sa.Column('status', sa.String(16), nullable=False),  # running|complete|failed
    sa.Column('models', sa.Text, nullable=False),  # JSON list of model ids
    sa.Column('repeat', sa.Integer, nullable=False),
    sa.Column('cases', sa.Integer, nullable=False),
    sa.Column('project', sa.String(200), nullable=False),
    sa.Column('started_at', sa.Float, nullable=False),
    sa.Column('finished_at', sa.Float),
    sa.Column('error', sa.Text),
)

# Per run and model: the numbers routing and the report read (written with the run's `complete`).
eval_results = sa.Table(
    'proctor_eval_results',
    metadata,
    sa.Column('run_id', sa.String(64), primary_key=True),
    sa.Column('model_id', sa.String(200), primary_key=True),
    sa.Column('suite', sa.String(200), nullable=False, index=True),
    sa.Column('model_version', sa.String(100)),
    sa.Column('cases', sa.Integer, nullable=False),  # case runs (cases x repeats) on this model
    sa.Column('skipped', sa.Integer, nullable=False),  # cases of a data class the model is not approved for
    sa.Column('passed', sa.Integer, nullable=False),
    sa.Column('pass_rate', sa.Float, nullable=False),
    sa.Column('mean_score', sa.Float, nullable=False),
    sa.Column('p50_ms', sa.Float, nullable=False),
    sa.Column('p95_ms', sa.Float, nullable=False),
    sa.Column('input_tokens', sa.Integer, nullable=False),
    sa.Column('output_tokens', sa.Integer, nullable=False),
    sa.Column('cost_usd', sa.Float, nullable=False),
    sa.Column('cost_per_case', sa.Float, nullable=False),
    sa.Column('judge_cost_usd', sa.Float, nullable=False),
    sa.Column('errors', sa.Integer, nullable=False),
    sa.Column('created_at', sa.Float, nullable=False),
)

# Every case run: the output, each check's verdict, latency, tokens and cost.
eval_cases = sa.Table(
    'proctor_eval_cases',
    metadata,
    sa.Column('run_id', sa.String(64), primary_key=True),
    sa.Column('model_id', sa.String(200), primary_key=True),
    sa.Column('case_name', sa.String(200), primary_key=True),
    sa.Column('repeat', sa.Integer, primary_key=True, autoincrement=False),
    sa.Column('data_class', sa.String(32), nullable=False),
    sa.Column('passed', sa.Boolean, nullable=False),
    sa.Column('score', sa.Float, nullable=False),
    sa.Column('latency_ms', sa.Float, nullable=False),
    sa.Column('input_tokens', sa.Integer, nullable=False),
    sa.Column('output_tokens', sa.Integer, nullable=False),
    sa.Column('cost_usd', sa.Float, nullable=False),
    sa.Column('judge_cost_usd', sa.Float, nullable=False),
    sa.Column('output', sa.Text),
    sa.Column('checks', sa.Text, nullable=False),  # JSON list of {check, passed, score, reason}
    sa.Column('error', sa.Text),
    sa.Column('created_at', sa.Float, nullable=False),
)
