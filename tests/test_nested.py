"""Hierarchical teams in one process: a specialist that leads its own sub-team (`Specialist(team=[...])`).

Bad trees are refused at `Team(...)` time naming the path; a lead delegates to its members through
the same `delegate_to_<name>` tools, in parallel within a turn; guardrails, the data class, routing,
budgets, the ledger, tracing and replay work at every level. The kill -9 and cross-process approval
tests of a nested team are in `test_nested_crash.py`.
"""

from __future__ import annotations

import io
import json

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console

from proctor import Budget, BudgetExceeded, Ledger, ModelRegistry, ModelRouter, Specialist, Supervisor, Team, UserError
from proctor.cli._app import main as cli
from proctor.guardrails._protocol import Decision
from proctor.orchestrator import budget_status, replay
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_call, tool_results
from proctor.tracing import LiveTree, Recording

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _cli_keeps_logging_alone(monkeypatch):
    monkeypatch.setattr('proctor.cli._app._configure_logging', lambda log_json: None)


def joined(prefix: str):
    return lambda m: text(f'{prefix}: ' + ' | '.join(tool_results(m)))


def lead(name: str, *members: str) -> ScriptedModel:
    """A lead that delegates to each member in one turn, then joins their results."""
    return ScriptedModel(
        [[delegate(m, f'{m} part', call_id=f'{name}-{m}') for m in members], joined(name)], name=f'{name}-model'
    )


def echo(name: str) -> ScriptedModel:
    return ScriptedModel(lambda m: text(f'{name}: {last_user_prompt(m)}'), name=f'{name}-model')


def leaf(name: str, **kw) -> Specialist:
    return Specialist(name, f'The {name}.', model=echo(name), **kw)


def nested_team(*, name: str = 'nested', durable: bool = False, **kw) -> Team:
    """supervisor → coding → {implementer, tester}, research → {reader_a, reader_b}."""
    return Team(
        Supervisor(model=lead('supervisor', 'coding', 'research')),
        [
            Specialist(
                'coding',
                'Lead coding.',
                model=lead('coding', 'implementer', 'tester'),
                team=[leaf('implementer'), leaf('tester')],
            ),
            Specialist(
                'research',
                'Lead research.',
                model=lead('research', 'reader_a', 'reader_b'),
                team=[leaf('reader_a'), leaf('reader_b')],
            ),
        ],
        name=name,
        durable=durable,
        **kw,
    )


DONE = (
    'supervisor: coding: implementer: implementer part | tester: tester part | '
    'research: reader_a: reader_a part | reader_b: reader_b part'
)


# ---------------------------------------------------------------------------- bad trees


def test_bad_trees_are_refused_at_team_time_naming_the_path(state_dir):
    built = iter(range(100))

    def team(*specialists, **kw):
        return Team(Supervisor(model='test'), list(specialists), name=f'bad-tree{next(built)}', durable=False, **kw)

    with pytest.raises(UserError, match=r"two members named 'reader' under supervisor>research"):
        team(
            Specialist(
                'research', 'R.', model='test', team=[leaf('reader'), Specialist('reader', 'Other.', model='test')]
            )
        )
    looped = Specialist('coding', 'C.', model='test')
    review = Specialist('review', 'R.', model='test', team=[looped])
    looped.team = (review,)
    with pytest.raises(UserError, match=r"supervisor>coding>review>coding: specialist 'coding' is its own ancestor"):
        team(looped)
    with pytest.raises(UserError, match=r"agent supervisor>coding>tester: specialist 'tester' has no model"):
        team(Specialist('coding', 'C.', model='test', team=[Specialist('tester', 'T.')]))

    def chain(depth: int) -> Specialist:
        spec = leaf(f'level{depth}')
        for d in range(depth - 1, 0, -1):
            spec = Specialist(f'level{d}', 'Lead.', model='test', team=[spec])
        return spec

    team(chain(4))  # the default max_depth: 4 delegations below the supervisor
    with pytest.raises(
        UserError, match=r'supervisor>level1>level2>level3>level4>level5 is 5 delegations deep, over max_depth=4'
    ):
        team(chain(5))
    team(chain(5), max_depth=5)
    with pytest.raises(UserError, match=r'supervisor>level1>level2 is 2 delegations deep, over max_depth=1'):
        team(chain(2), max_depth=1)
    with pytest.raises(UserError, match='a member under supervisor>coding is a str, not a Specialist'):
        team(Specialist('coding', 'C.', model='test', team=['tester']))
    with pytest.raises(UserError, match=r'not Supervisor\(team=...\)'):
        Team(Supervisor(model='test', team=[leaf('x')]), [leaf('y')], name='bad-tree2', durable=False)


# ---------------------------------------------------------------------------- delegation


@pytest.mark.parametrize('durable', [False, True], ids=['plain', 'durable'])
async def test_a_lead_delegates_to_its_members_in_parallel_through_the_same_tools(state_dir, durable):
    gate = (anyio.Event(), anyio.Event())
    offered: dict[str, list[str]] = {}

    def member(name: str, mine: anyio.Event, other: anyio.Event) -> ScriptedModel:
        async def answer(messages, info):
            offered[name] = sorted(t.name for t in info.function_tools)
            mine.set()
            with anyio.fail_after(10):  # both members of the lead are in flight at once
                await other.wait()
            return text(f'{name}: {last_user_prompt(messages)}')

        return ScriptedModel(answer, name=f'{name}-model')

    def lead_of(name: str, *members: str) -> ScriptedModel:
        def answer(messages, info):
            offered[name] = sorted(t.name for t in info.function_tools)
            if not tool_results(messages):
                return [delegate(m, f'{m} part') for m in members]
            return joined(name)(messages)

        return ScriptedModel(answer, name=f'{name}-model')

    team = Team(
        Supervisor(model=lead_of('supervisor', 'coding', 'research')),
        [
            Specialist(
                'coding',
                'Lead coding.',
                model=lead_of('coding', 'implementer', 'tester'),
                team=[
                    Specialist('implementer', 'I.', model=member('implementer', gate[0], gate[1])),
                    Specialist('tester', 'T.', model=member('tester', gate[1], gate[0])),
                ],
            ),
            Specialist(
                'research',
                'Lead research.',
                model=lead_of('research', 'reader_a', 'reader_b'),
                team=[leaf('reader_a'), leaf('reader_b')],
            ),
        ],
        name=f'nested-par-{durable}',
        durable=durable,
        observers=[live := LiveTree(Console(file=io.StringIO()), live=False)],
    )
    result = await team.run('ship it')
    assert result.status == 'succeeded' and result.output == DONE
    buf = io.StringIO()
    Console(file=buf, width=200).print(live.render())  # the live terminal tree: members under their lead
    lines = buf.getvalue().splitlines()
    col = {n: next(line.index(n) for line in lines if f'{n}  ' in line) for n in ('coding', 'tester', 'reader_b')}
    assert col['tester'] > col['coding'] and col['reader_b'] == col['tester']
    assert offered == {
        'supervisor': ['delegate_to_coding', 'delegate_to_research'],
        'coding': ['delegate_to_implementer', 'delegate_to_tester'],
        'research': ['delegate_to_reader_a', 'delegate_to_reader_b'],
        'implementer': [],
        'tester': [],
    }
    by = {d.agent_path: d for d in result.delegations}
    assert set(by) == {
        'supervisor>coding',
        'supervisor>coding>implementer',
        'supervisor>coding>tester',
        'supervisor>research',
        'supervisor>research>reader_a',
        'supervisor>research>reader_b',
    }
    assert by['supervisor>coding>tester'].output == 'tester: tester part'
    assert by['supervisor>coding'].output == 'coding: implementer: implementer part | tester: tester part'
    # The run's usage counts every level: 2 + 2 + 2 lead/supervisor requests and 4 leaves.
    assert result.usage.requests == 10 == sum(d.usage.requests for d in result.delegations) + 2


async def test_members_named_alike_under_two_leads_keep_their_own_models_and_tools(state_dir):
    def note_a() -> str:
        """Take a note (a's own tool)."""
        return 'noted a'

    def note_b() -> str:
        """Take a note (b's own tool)."""
        return 'noted b'

    def writer(tool: str, name: str) -> ScriptedModel:
        return ScriptedModel([[tool_call(tool)], joined(name)], name=name)

    team = Team(
        Supervisor(model=lead('supervisor', 'docs', 'code')),
        [
            Specialist(
                'docs',
                'Docs.',
                model=lead('docs', 'writer'),
                team=[Specialist('writer', 'W.', model=writer('note_a', 'writer-a'), tools=[note_a])],
            ),
            Specialist(
                'code',
                'Code.',
                model=lead('code', 'writer'),
                team=[Specialist('writer', 'W.', model=writer('note_b', 'writer-b'), tools=[note_b])],
            ),
        ],
        name='alike',
        durable=False,
    )
    result = await team.run('write')
    by = {d.agent_path: d for d in result.delegations}
    assert (by['supervisor>docs>writer'].model_id, by['supervisor>docs>writer'].output) == (
        'writer-a',
        'writer-a: noted a',
    )
    assert (by['supervisor>code>writer'].model_id, by['supervisor>code>writer'].output) == (
        'writer-b',
        'writer-b: noted b',
    )


async def test_a_member_that_needs_its_own_workflow_makes_its_lead_a_child_workflow_too(state_dir):
    from dbos import DBOS

    def shout(x: str) -> str:
        return x.upper()

    team = Team(
        Supervisor(model=lead('supervisor', 'coding', 'research')),
        [
            Specialist(
                'coding',
                'Lead coding.',
                model=lead('coding', 'implementer', 'tester'),
                team=[
                    # an output function may act outside any tool call: its delegation is a DBOS child workflow
                    Specialist(
                        'implementer',
                        'I.',
                        model=ScriptedModel([tool_call('final_result', {'x': 'ok'})]),
                        output_type=shout,
                    ),
                    leaf('tester'),
                ],
            ),
            leaf('research'),
        ],
        name='nested-wf',
    )
    result = await team.run('ship it', run_id='nested-wf-run')
    assert result.output == 'supervisor: coding: OK | tester: tester part | research: research part'
    flows = {w.workflow_id: w for w in await DBOS.list_workflows_async()}
    assert {w.parent_workflow_id for w in flows.values() if w.workflow_id != 'nested-wf-run'} == {
        'nested-wf-run',  # the coding lead's child workflow, started from the run's
        'nested-wf-run-1',  # the implementer's, started from its lead's
    }
    assert {w.status for w in flows.values()} == {'SUCCESS'}


# ---------------------------------------------------------------------------- guardrails, data class, tools


class Watch:
    """Records every guard context it sees; redacts 'secret' in the input of any agent."""

    name = 'watch'
    hooks = frozenset({'input', 'output', 'tool_call'})

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str | None]] = []

    def check(self, payload, ctx):
        self.seen.append((ctx.hook, ctx.agent_path, ctx.data_class, ctx.tool))
        if ctx.hook == 'input' and isinstance(payload, str) and 'secret' in payload:
            return Decision.redact(payload.replace('secret', '[redacted]'), 'secret word')
        return Decision.allow()


async def test_guardrails_and_the_data_class_apply_at_every_level_and_each_member_keeps_its_own_tools(state_dir):
    def run_tests() -> str:
        """Run the tests (the tester's own tool)."""
        return 'tests pass'

    watch = Watch()
    tester = ScriptedModel(
        [
            [tool_call('run_tests', call_id='t1')],
            # the implementer's tool is not the tester's: pydantic-ai tells the model it does not exist
            [tool_call('write_code', call_id='t2')],
            lambda m: text('tester: ' + ' | '.join(tool_results(m)) + f' | asked: {last_user_prompt(m)}'),
        ],
        name='tester-model',
    )

    def write_code() -> str:
        """Write the code (the implementer's own tool)."""
        return 'written'

    coding = ScriptedModel(
        [[delegate('tester', 'test the secret path', call_id='c-t')], joined('coding')], name='coding-model'
    )
    team = Team(
        Supervisor(model=lead('supervisor', 'coding')),
        [
            Specialist(
                'coding',
                'Lead coding.',
                model=coding,
                team=[
                    Specialist('implementer', 'I.', model=echo('implementer'), tools=[write_code]),
                    Specialist('tester', 'T.', model=tester, tools=[run_tests]),
                ],
            )
        ],
        name='guarded-tree',
        durable=False,
        guardrails=[watch],
    )
    result = await team.run('ship it', data_class='confidential')
    tested = next(d for d in result.delegations if d.agent_path == 'supervisor>coding>tester')
    assert tested.subtask == 'test the [redacted] path'  # the input guard ran on the grandchild's subtask
    assert 'tests pass' in tested.output and 'Unknown tool name' in tested.output and "'write_code'" in tested.output
    assert {dc for _, _, dc, _ in watch.seen} == {'confidential'}  # the run's data class at every level
    assert {(h, p) for h, p, _, _ in watch.seen if h in ('input', 'output')} == {
        (h, p) for h in ('input', 'output') for p in ('supervisor', 'supervisor>coding', 'supervisor>coding>tester')
    }
    assert ('tool_call', 'supervisor>coding>tester', 'confidential', 'run_tests') in watch.seen
    assert ('tool_call', 'supervisor>coding', 'confidential', 'delegate_to_tester') in watch.seen


# ---------------------------------------------------------------------------- routing, budgets, ledger


async def test_routing_budgets_and_the_ledger_attribute_a_grandchilds_spend_to_its_path(state_dir, capsys):
    every = ['public', 'internal', 'confidential', 'restricted']

    def priced(model, usd: float) -> dict:
        return {'model': model, 'usd_per_m_input': usd, 'usd_per_m_output': usd, 'data_classes': every}

    registry = ModelRegistry(
        {
            'boss': priced(lead('supervisor', 'coding'), 10),
            'lead': priced(lead('coding', 'implementer', 'tester'), 5),
            'strong': priced(echo('strong'), 3),
            'cheap': priced(echo('cheap'), 1),
        }
    )
    policy = {
        'specialists': {
            'supervisor': {'preferred': 'boss'},
            'coding': {'preferred': 'lead'},
            'implementer': {'preferred': 'strong'},
            'tester': {'preferred': 'cheap'},
        }
    }
    router = ModelRouter(
        registry,
        policy,
        budgets=[
            Budget('specialist', 'tester', usd=1.0),
            Budget('specialist', 'coding', usd=1.0),
            Budget('project', 'p', usd=5.0),
        ],
    )
    team = Team(
        Supervisor(),
        [Specialist('coding', 'Lead coding.', team=[Specialist('implementer', 'I.'), Specialist('tester', 'T.')])],
        router=router,
        name='routed-tree',
        durable=False,
    )
    result = await team.run('ship it', project='p')
    by = {d.agent_path: d for d in result.delegations}
    assert {p: d.model_id for p, d in by.items()} == {  # each member on its own preferred model, one policy
        'supervisor>coding': 'lead',
        'supervisor>coding>implementer': 'strong',
        'supervisor>coding>tester': 'cheap',
    }
    rows = Ledger().entries(run_id=result.run_id)
    tester_rows = [r for r in rows if r.agent_path == 'supervisor>coding>tester']
    assert [(r.team, r.project, r.specialist, r.model_id) for r in tester_rows] == [
        ('routed-tree', 'p', 'tester', 'cheap')
    ]
    assert result.cost_usd == pytest.approx(sum(r.cost_usd for r in rows))  # the run counts every level
    assert tester_rows[0].cost_usd > 0
    assert by['supervisor>coding>tester'].cost_usd == pytest.approx(tester_rows[0].cost_usd)
    spent = {b['scope']: b['spent_usd'] for b in budget_status(team.store)}
    assert spent['specialist:tester'] == pytest.approx(tester_rows[0].cost_usd)
    assert spent['project:p'] == pytest.approx(result.cost_usd)
    # a lead's budget covers its branch: its own calls and its members'
    assert spent['specialist:coding'] == pytest.approx(sum(r.cost_usd for r in rows if r.agent_path != 'supervisor'))

    cli(['usage', '--by', 'specialist', '--run', result.run_id, '--json'])
    doc = json.loads(capsys.readouterr().out)
    assert {r['key']: r['calls'] for r in doc['rows']} == {
        'supervisor': 2,
        'coding': 2,
        'supervisor>coding>implementer': 1,
        'supervisor>coding>tester': 1,
    }
    assert doc['total']['cost_usd'] == pytest.approx(result.cost_usd)


# ---------------------------------------------------------------------------- tracing


def _tree(finished) -> list:
    ids = {s.context.span_id for s in finished}
    by_parent: dict = {}
    for s in finished:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(s)

    def build(pid):
        return sorted((s.name, build(s.context.span_id)) for s in by_parent.get(pid, []))

    return build(None)


def _agents(tree, out=None, depth=0) -> list:
    """The invoke_agent spans of a span tree with their depth among invoke_agent spans."""
    out = [] if out is None else out
    for name, kids in tree:
        inner = depth + 1 if name.startswith('invoke_agent ') else depth
        if name.startswith('invoke_agent '):
            out.append((depth, name))
        _agents(kids, out, inner)
    return out


@pytest.mark.parametrize('durable', [False, True], ids=['plain', 'durable'])
async def test_one_connected_trace_nests_invoke_agent_spans_as_the_delegation_tree(
    state_dir, capsys, monkeypatch, durable
):
    monkeypatch.setenv('COLUMNS', '250')
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    team = nested_team(name=f'traced-tree-{durable}', durable=durable, tracer_provider=provider)
    result = await team.run('ship it')
    finished = exp.get_finished_spans()
    assert len({s.context.trace_id for s in finished}) == 1  # one connected trace
    tree = _tree(finished)
    assert [n for n, _ in tree] == ['team.run']
    n = team.name
    assert sorted(_agents(tree)) == sorted(
        [
            (0, f'invoke_agent {n}.supervisor'),
            (1, f'invoke_agent {n}.coding'),
            (1, f'invoke_agent {n}.research'),
            (2, f'invoke_agent {n}.coding.implementer'),
            (2, f'invoke_agent {n}.coding.tester'),
            (2, f'invoke_agent {n}.research.reader_a'),
            (2, f'invoke_agent {n}.research.reader_b'),
        ]
    )
    spans = {s.context.span_id: s for s in finished}

    def ancestors(s) -> list[str]:
        out = []
        while s.parent is not None and s.parent.span_id in spans:
            s = spans[s.parent.span_id]
            out.append(s.name)
        return out

    [tester] = [s for s in finished if s.name == 'delegate tester']
    assert tester.attributes['proctor.agent_path'] == 'supervisor>coding>tester'
    chain = [a for a in ancestors(tester) if a.startswith(('delegate ', 'invoke_agent ', 'team.run'))]
    assert chain == [f'invoke_agent {n}.coding', 'delegate coding', f'invoke_agent {n}.supervisor', 'team.run']

    cli(['traces', 'show', result.run_id, '--json'])
    shown = json.loads(capsys.readouterr().out)

    def depth_of(nodes, name, depth=0):
        for node in nodes:
            if node['name'] == name:
                return depth
            found = depth_of(node.get('children', []), name, depth + 1)
            if found is not None:
                return found
        return None

    assert depth_of(shown['tree'], 'delegate tester') > depth_of(shown['tree'], 'delegate coding') > 0
    cli(['runs', 'show', result.run_id])
    out = capsys.readouterr().out.splitlines()
    row = {
        p: next(i for i, line in enumerate(out) if f'{p} [' in line)
        for p in ('supervisor>coding', 'supervisor>coding>tester')
    }
    indent = {p: len(out[i]) - len(out[i].lstrip(' │├└─')) for p, i in row.items()}
    assert indent['supervisor>coding>tester'] > indent['supervisor>coding']  # the member under its lead

    # The console's waterfall, from the stored spans and from the records alone (runs without spans).
    from proctor.console._data import ConsoleData
    from proctor.console._waterfall import layout, spans_from_records

    rec = team.get_run(result.run_id)
    for rows in (ConsoleData(team.store).spans_of(result.run_id, rec.trace_id), spans_from_records(rec)):
        depth = {r.agent_path: r.depth for r in layout(rows).rows if r.category == 'delegate'}
        assert depth['supervisor>coding>tester'] > depth['supervisor>coding'] > 0


# ---------------------------------------------------------------------------- replay and fork


async def test_a_nested_run_replays_with_zero_live_calls_and_forks_at_a_grandchilds_step(state_dir):
    team = nested_team(name='replayed-tree', durable=True)
    result = await team.run('ship it')
    report = await replay(result.run_id, team=team)
    assert report.ok, report.summary()
    assert (report.live_model_calls, report.replayed_model_calls, report.output) == (0, 10, DONE)

    rec = Recording.from_store(team.store, result.run_id)
    tester_step = next(
        s.step for s in rec.steps if s.kind == 'model' and s.payload.get('agent_path') == 'supervisor>coding>tester'
    )
    assert tester_step == 'supervisor>coding:supervisor-coding>tester:coding-tester#model:1'
    number = report.steps.index(tester_step) + 1
    fresh = ScriptedModel([text('tester: redone')], name='fresh-tester')
    fork = await replay(result.run_id, team=team, fork_at=number, models={'tester': fresh})
    assert fork.ok and fork.fork_at == tester_step
    # live: the tester's step, then what depends on it (its lead's and the supervisor's next turns);
    # every other branch at every level replays from the recording.
    assert fresh.calls == 1 and fork.live_model_calls == 3 and fork.replayed_model_calls == 7
    assert fork.diff.fork_output == DONE.replace('tester: tester part', 'tester: redone')
    assert {s.partition('#')[0] for s in fork.diff.live_steps} == {
        'supervisor',
        'supervisor>coding:supervisor-coding',
        'supervisor>coding:supervisor-coding>tester:coding-tester',
    }


async def test_a_leads_budget_covers_its_branch_and_stops_a_members_call(state_dir):
    every = ['public', 'internal', 'confidential', 'restricted']

    def priced(model, usd: float) -> dict:
        return {
            'model': model,
            'usd_per_m_input': usd,
            'usd_per_m_output': usd,
            'data_classes': every,
            'max_output_tokens': 50,
        }

    registry = ModelRegistry(
        {
            'boss': priced(lead('supervisor', 'coding'), 10),
            'lead': priced(lead('coding', 'tester'), 5),
            'cheap': priced(echo('cheap'), 1),
        }
    )
    policy = {
        'specialists': {
            'supervisor': {'preferred': 'boss'},
            'coding': {'preferred': 'lead'},
            'tester': {'preferred': 'cheap'},
        }
    }
    # Room for the lead's own first call (~64 tokens), not for it plus a member's (up to ~128 more).
    router = ModelRouter(registry, policy, budgets=[Budget('specialist', 'coding', tokens=150)])
    team = Team(
        Supervisor(),
        [Specialist('coding', 'Lead.', team=[Specialist('tester', 'T.')])],
        router=router,
        name='lead-budget',
        durable=False,
    )
    with pytest.raises(BudgetExceeded) as info:
        await team.run('ship it')
    assert info.value.budget == 'specialist:coding'
    [run] = team.list_runs()
    by = {d.agent_path: d for d in team.get_run(run.run_id).delegations}
    assert (
        by['supervisor>coding>tester'].status == 'failed'
        and 'specialist:coding' in by['supervisor>coding>tester'].error
    )
    assert [r.agent_path for r in Ledger().entries(run_id=run.run_id)] == ['supervisor', 'supervisor>coding']


# ---------------------------------------------------------------------------- approvals


async def test_two_deep_approvals_in_two_branches_each_wake_only_their_own(state_dir):
    from proctor.guardrails import ApprovalPolicy, ApprovalQueue, ApprovalRule
    from proctor.state._records import RunRecords

    done: list[str] = []

    def bump(name: str) -> str:
        """A risky effect."""
        done.append(name)
        return f'bumped {name}'

    def risky(name: str) -> Specialist:
        model = ScriptedModel([[tool_call('bump', {'name': f'risky-{name}'})], joined(name)], name=f'{name}-model')
        return Specialist(name, f'The {name}.', model=model, tools=[bump])

    team = Team(
        Supervisor(model=lead('supervisor', 'coding', 'research')),
        [
            Specialist(
                'coding',
                'C.',
                model=lead('coding', 'implementer', 'tester'),
                team=[leaf('implementer'), risky('tester')],
            ),
            Specialist(
                'research',
                'R.',
                model=lead('research', 'reader_a', 'reader_b'),
                team=[risky('reader_a'), leaf('reader_b')],
            ),
        ],
        name='two-approvals',
        guardrails=[ApprovalPolicy([ApprovalRule(tool='bump', args={'name': 'risky-*'}, reason='risky')])],
    )
    queue, records = ApprovalQueue(team.store), RunRecords(team.store)

    async def poll(predicate, what: str):
        with anyio.fail_after(60):
            while not (value := await anyio.to_thread.run_sync(predicate)):
                await anyio.sleep(0.02)
        return value

    def statuses() -> dict[str, str]:
        return {d.agent_path: d.status for d in records.get('two-approvals-run').delegations}

    box = {}
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            box['r'] = await team.run('ship it', run_id='two-approvals-run')

        tg.start_soon(run)
        pending = await poll(lambda: len(p := queue.list(status='pending')) == 2 and p, 'two approvals')
        by = {a.agent_path: a for a in pending}
        assert set(by) == {'supervisor>coding>tester', 'supervisor>research>reader_a'}
        await anyio.to_thread.run_sync(
            lambda: queue.approve(by['supervisor>coding>tester'].approval_id, decider='ops', roles=['operator'])
        )
        # exactly the tester's branch wakes: it and its lead finish, reader_a still waits
        s = await poll(lambda: (s := statuses()).get('supervisor>coding') == 'succeeded' and s, 'the coding branch')
        assert (s['supervisor>coding>tester'], s['supervisor>research>reader_a']) == ('succeeded', 'waiting')
        assert done == ['risky-tester'] and queue.get(by['supervisor>research>reader_a'].approval_id).pending
        await anyio.to_thread.run_sync(
            lambda: queue.approve(by['supervisor>research>reader_a'].approval_id, decider='ops', roles=['operator'])
        )
    assert box['r'].status == 'succeeded' and done == ['risky-tester', 'risky-reader_a']
    assert box['r'].output == (
        'supervisor: coding: implementer: implementer part | tester: bumped risky-tester | '
        'research: reader_a: bumped risky-reader_a | reader_b: reader_b part'
    )
