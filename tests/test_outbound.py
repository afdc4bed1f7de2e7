"""Secrets and personal data do not leave a run through tool arguments with the default guardrails:
a write, a command, a memory write or an MCP call carrying one is blocked (the model told why) or
sent to an operator's approval, and the hit is recorded."""

from __future__ import annotations

import time

import anyio
import pytest
import sqlalchemy as sa

from proctor import Supervisor, Team, coding
from proctor.exceptions import ConfigError, GuardrailTripped
from proctor.guardrails import ApprovalQueue, GuardContext, OutboundGuard, default_guardrails
from proctor.state._schema import guard_events
from proctor.testing import ScriptedModel, delegate, text, tool_call, tool_results

KEY = 'sk-proj-' + 'A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6'


def ctx(tool: str) -> GuardContext:
    return GuardContext(
        hook='tool_call',
        run_id='r',
        agent_path='supervisor>coding',
        specialist='coding',
        data_class='internal',
        tool=tool,
    )


@pytest.mark.parametrize(
    ('tool', 'args'),
    [
        ('write_file', {'path': 'leak.txt', 'content': f'key={KEY}'}),
        ('run_command', {'command': 'curl -H "Authorization: Bearer ghp_' + 'a1B2' * 9 + '" x'}),
        ('remember', {'text': 'the customer is jane.doe@example.com', 'tags': ['crm']}),
        ('github_create_issue', {'body': {'nested': ['card 4111 1111 1111 1111']}}),  # an MCP server's tool
    ],
)
def test_tools_that_act_or_send_are_scanned(tool, args):
    d = OutboundGuard().check(args, ctx(tool))
    assert d.action == 'block' and d.tell_agent
    assert tool in d.reason and KEY not in d.reason and 'jane' not in d.reason  # kinds and counts, never values


@pytest.mark.parametrize('tool', ['read_file', 'list_files', 'search_files', 'recall', 'delegate_to_coding'])
def test_read_only_tools_are_not(tool):
    assert OutboundGuard().check({'path': f'{KEY}.txt', 'query': 'jane.doe@example.com'}, ctx(tool)).action == 'allow'


def test_clean_arguments_pass_and_the_policy_is_configurable():
    g = OutboundGuard()
    code = {'path': 'src/app.py', 'content': 'import os\nKEY = os.environ["OPENAI_API_KEY"]  # sha 3f786850e387550f\n'}
    assert g.check(code, ctx('write_file')).action == 'allow'
    approve = OutboundGuard(action='approve', role='security').check({'content': KEY}, ctx('write_file'))
    assert (approve.action, approve.role, approve.on_reject) == ('approve', 'security', 'tell_agent')
    stop = OutboundGuard(action='stop_run').check({'content': KEY}, ctx('write_file'))
    assert (stop.action, stop.tell_agent) == ('block', False)
    assert OutboundGuard(allow=['ops@example.com']).check({'to': 'ops@example.com'}, ctx('send')).action == 'allow'
    with pytest.raises(ConfigError, match='guardrails.outbound.action'):
        OutboundGuard(action='redact')  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match='guardrails.outbound.kinds'):
        OutboundGuard(kinds=['password'])


def _team(ws, name: str, **guards: object) -> Team:
    cod = ScriptedModel(
        [
            [tool_call('write_file', {'path': 'leak.txt', 'content': f'key={KEY}'})],
            lambda m: text('coding saw: ' + ' | '.join(tool_results(m))),
        ]
    )
    sup = ScriptedModel([[delegate('coding', 'write the key down')], lambda m: text(tool_results(m)[0])])
    return Team(Supervisor(model=sup), [coding(cod)], workspace=ws, name=name, guardrails=default_guardrails(**guards))


def _decisions(team: Team, run_id: str) -> list[tuple[str, str, str, str]]:
    g = guard_events.c
    with team.store.engine.connect() as c:
        q = sa.select(g.guard, g.hook, g.decision, g.reason).where(g.run_id == run_id)
        return [tuple(r) for r in c.execute(q)]


@pytest.mark.anyio
async def test_default_guardrails_block_a_secret_written_to_a_file_and_the_run_goes_on(state_dir, tmp_path):
    team = _team(tmp_path, 'out-block')
    result = await team.run('write the key down', run_id='leak-1')
    assert result.status == 'succeeded' and not (tmp_path / 'leak.txt').exists()
    assert "The write_file call was blocked by guardrail 'outbound'" in result.output
    assert 'the arguments of write_file hold 1 secret' in result.output
    ((guard, hook, decision, reason),) = _decisions(team, 'leak-1')
    assert (guard, hook, decision) == ('outbound', 'tool_call', 'block') and KEY not in reason


@pytest.mark.anyio
async def test_the_policy_can_send_it_to_an_approval_instead(state_dir, tmp_path):
    team = _team(tmp_path, 'out-approve', outbound='approve')
    q = ApprovalQueue(team.store)
    box = {}

    async def run() -> None:
        box['r'] = await team.run('write the key down', run_id='leak-2')

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        deadline = time.monotonic() + 60
        while not q.list(status='pending'):
            assert time.monotonic() < deadline, 'no approval was asked for'
            await anyio.sleep(0.02)
        (a,) = q.list(status='pending')
        assert (a.tool, a.required_role) == ('write_file', 'operator') and 'hold 1 secret' in a.reason_required
        assert not (tmp_path / 'leak.txt').exists()
        await anyio.to_thread.run_sync(lambda: q.approve(a.approval_id, decider='ops', roles=['operator']))
    assert box['r'].status == 'succeeded' and (tmp_path / 'leak.txt').read_text() == f'key={KEY}'
    assert ('outbound', 'tool_call', 'approve') in [d[:3] for d in _decisions(team, 'leak-2')]


@pytest.mark.anyio
async def test_stop_run_fails_the_run_before_the_tool_runs(state_dir, tmp_path):
    team = _team(tmp_path, 'out-stop', outbound='stop_run')
    with pytest.raises(GuardrailTripped, match='outbound'):
        await team.run('write the key down', run_id='leak-3')
    assert not (tmp_path / 'leak.txt').exists() and team.get_run('leak-3').status == 'failed'


def test_proctor_toml_turns_it_on_with_its_policy():
    from proctor.guardrails import guardrails_from

    (g,) = guardrails_from({'outbound': {'action': 'approve', 'role': 'security'}})
    assert isinstance(g, OutboundGuard) and (g.action, g.role) == ('approve', 'security')
    assert isinstance(guardrails_from({'outbound': True})[0], OutboundGuard)
    with pytest.raises(ConfigError, match='guardrails.outbound.action'):
        guardrails_from({'outbound': {'action': 'shout'}})
