"""The web console over HTTP: sign-in, sessions, CSRF, roles, the approval inbox, runs, traces, replay, usage."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import anyio
import httpx
import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from starlette.testclient import TestClient

from proctor import Specialist, Supervisor, Team
from proctor.console import Operator, create_app, hash_token, load_operators
from proctor.exceptions import ConfigError
from proctor.guardrails import ApprovalPolicy, ApprovalQueue, ApprovalRule
from proctor.orchestrator import RunRecords
from proctor.state._schema import approvals, budget_usage, ledger
from proctor.state._store import StateStore
from proctor.testing import (
    ScriptedModel,
    delegate,
    final_output,
    last_user_prompt,
    text,
    tool_call,
    tool_results,
    turn_of,
)
from proctor.tools import read_file, write_file
from proctor.tracing import audit_entries

OPERATORS = [
    Operator.with_token('alice', 'alice-token', ['operator']),
    Operator.with_token('bob', 'bob-token', ['reviewer']),
    Operator.with_token('carol', 'carol-token', ['operator', 'admin']),
]


# ---------------------------------------------------------------------------------------------- a team


def shop_team() -> Team:
    """Supervisor fans out to research and coding, which wait for each other: they always overlap in time."""
    started: list[str] = []
    both = threading.Event()

    def sup(messages):
        results = tool_results(messages)
        if not results:
            return [delegate('research', 'find the prices'), delegate('coding', 'write the cart')]
        return text('FINAL: ' + ' | '.join(sorted(results)))

    def worker(name: str):
        async def answer(messages):
            started.append(name)
            if len(started) >= 2:
                both.set()
            await anyio.to_thread.run_sync(both.wait, 10)
            return text(f'{name} did: {last_user_prompt(messages)}')

        return ScriptedModel(answer, name=f'fake-{name}')

    return Team(
        Supervisor(model=ScriptedModel(sup, name='fake-supervisor')),
        [
            Specialist('research', 'Research.', model=worker('research')),
            Specialist('coding', 'Code.', model=worker('coding')),
        ],
        name='shop',
        durable=False,
        factory=f'{__file__}:shop_team',
    )


def writer_team(workspace: str) -> Team:
    """Coding writes `hello.py`, which the policy makes wait for an operator."""

    def coder(messages):
        if turn_of(messages) == 0:
            return tool_call(
                'write_file', {'path': 'hello.py', 'content': 'def hello(name):\n    return f"Hello, {name}!"\n'}
            )
        return text('coding: ' + tool_results(messages)[-1])

    return Team(
        Supervisor(
            model=ScriptedModel(
                [[delegate('coding', 'update hello.py')], lambda m: text('done: ' + tool_results(m)[-1])]
            )
        ),
        [Specialist('coding', 'Code.', model=ScriptedModel(coder, name='fake-coding'), tools=[write_file, read_file])],
        name='writer',
        workspace=workspace,
        durable=False,
        guardrails=[ApprovalPolicy([ApprovalRule(tool='write_file', reason='writes to the workspace')])],
    )


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def store(state_dir) -> StateStore:
    return StateStore(state_dir)


@pytest.fixture
def shop_run(store):
    return shop_team().run_sync('Build the shop', project='web', data_class='internal')


@pytest.fixture
def workspace(tmp_path) -> Path:
    ws = tmp_path / 'ws'
    ws.mkdir()
    (ws / 'hello.py').write_text('def hello(name):\n    return "hi " + name\n')
    return ws


def open_approval(
    store,
    run_id: str,
    approval_id: str,
    *,
    role: str = 'operator',
    expires_after_s: float | None = 600,
    tool: str = 'run_command',
    args: dict | None = None,
    data_class: str = 'internal',
):
    return ApprovalQueue(store).open(
        approval_id=approval_id,
        run_id=run_id,
        agent_path='supervisor>coding',
        tool=tool,
        args=args if args is not None else {'command': 'make deploy'},
        data_class=data_class,
        required_role=role,
        reason_required='policy: deploys need a human',
        expires_after_s=expires_after_s,
    )


@pytest.fixture
def app(store):
    return create_app(store, operators=OPERATORS)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def sign_in(client: TestClient, token: str, next_path: str = '/approvals') -> str:
    """Sign in through the form; returns the session's CSRF token (from the page's meta tag)."""
    page = client.get('/login')
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)
    r = client.post(
        '/login', data={'token': token, 'login_csrf': login_csrf, 'next': next_path}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    landing = client.get('/approvals')
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', landing.text).group(1)


def approval_row(store, approval_id: str) -> dict:
    with store.engine.connect() as c:
        return dict(c.execute(sa.select(approvals).where(approvals.c.approval_id == approval_id)).mappings().one())


# ---------------------------------------------------------------------------------------------- sign-in


def test_sign_in_with_a_token_and_sign_out(client):
    r = client.get('/runs', follow_redirects=False)
    assert r.status_code == 303 and r.headers['location'] == '/login?next=/runs'

    csrf = sign_in(client, 'alice-token')
    page = client.get('/runs')
    assert page.status_code == 200 and 'alice' in page.text
    cookie = client.cookies.get('proctor_session')
    assert cookie and 'alice-token' not in cookie

    r = client.post('/logout', data={'csrf_token': csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers['location'] == '/login'
    assert client.get('/runs', follow_redirects=False).status_code == 303


def test_bad_sign_in_attempts_are_refused(client):
    page = client.get('/login')
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)
    r = client.post('/login', data={'token': 'nope', 'login_csrf': login_csrf})
    assert r.status_code == 401 and 'Unknown token' in r.text
    assert 'proctor_session' not in client.cookies
    # the login form's own CSRF token must come back with the cookie that was set alongside it
    r = client.post('/login', data={'token': 'alice-token', 'login_csrf': 'forged'})
    assert r.status_code == 403 and 'proctor_session' not in client.cookies


def test_sign_in_never_redirects_off_site(client):
    page = client.get('/login')
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)
    r = client.post(
        '/login',
        data={'token': 'alice-token', 'login_csrf': login_csrf, 'next': '//evil.example/x'},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers['location'] == '/approvals'


def test_forged_expired_or_revoked_sessions_count_as_signed_out(store, client):
    sign_in(client, 'alice-token')
    good = client.cookies.get('proctor_session')
    body, sig = good.rsplit('.', 1)
    tampered = body[:-2] + ('AA' if body[-2:] != 'AA' else 'BB') + '.' + sig
    for value in (tampered, body + '.' + 'x' * len(sig), 'garbage'):
        client.cookies.clear()
        client.cookies.set('proctor_session', value)
        assert client.get('/api/runs').status_code == 401
    # a new token for alice in the config ends her existing sessions
    rotated = create_app(store, operators=[Operator.with_token('alice', 'new-token', ['operator'])])
    with TestClient(rotated) as other:
        other.cookies.set('proctor_session', good)
        assert other.get('/api/runs').status_code == 401
    # and an expired session is refused too
    signer = client.app.state.console.signer
    signer.ttl_s = -1
    expired, _ = signer.issue(OPERATORS[0])
    client.cookies.clear()
    client.cookies.set('proctor_session', expired)
    assert client.get('/api/runs').status_code == 401
    signer.ttl_s = 3600
    client.cookies.clear()
    client.cookies.set('proctor_session', signer.issue(OPERATORS[0])[0])
    assert client.get('/api/runs').status_code == 200  # the same way of setting it works for a good cookie


GET_ROUTES = ['/', '/approvals', '/approvals/pending.html', '/approvals/apr-1', '/runs', '/runs/r1', '/usage']
API_ROUTES = ['/api/approvals', '/api/approvals/apr-1', '/api/runs', '/api/runs/r1', '/api/usage']
POST_ROUTES = [
    '/logout',
    '/approvals/apr-1/approve',
    '/approvals/apr-1/reject',
    '/runs/r1/replay',
    '/api/approvals/apr-1/approve',
    '/api/approvals/apr-1/reject',
    '/api/runs/r1/replay',
]


@pytest.mark.parametrize('path', GET_ROUTES)
def test_pages_without_a_session_redirect_to_sign_in(client, path):
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers['location'].startswith('/login?next=')


@pytest.mark.parametrize('path', API_ROUTES)
def test_api_without_a_session_is_401(client, path):
    r = client.get(path)
    assert r.status_code == 401 and r.json() == {'error': 'not signed in'}


@pytest.mark.parametrize('path', POST_ROUTES)
def test_posts_without_a_session_change_nothing(store, shop_run, client, path):
    open_approval(store, shop_run.run_id, 'apr-1')
    r = client.post(path.replace('r1', shop_run.run_id), data={'reason': 'x'}, follow_redirects=False)
    assert r.status_code in (303, 401)
    assert approval_row(store, 'apr-1')['status'] == 'pending'


def test_security_headers_and_static_assets_ship_with_the_package(client):
    r = client.get('/login')
    csp = r.headers['content-security-policy']
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers['x-frame-options'] == 'DENY'
    for asset in ('/static/console.js', '/static/console.css', '/static/favicon.svg'):
        assert client.get(asset).status_code == 200
    # nothing in the pages points at another host
    assert not re.search(r'(src|href)="(https?:)?//', r.text)


# ---------------------------------------------------------------------------------------------- the inbox


def test_inbox_shows_what_an_operator_needs_to_decide(store, client, workspace):
    run_id = 'run-with-workspace'
    RunRecords(store).create_run(
        run_id=run_id,
        team='t',
        project='web',
        data_class='confidential',
        task='t',
        factory=None,
        workspace=str(workspace),
        durable=False,
    )
    with store.engine.begin() as c:
        c.execute(
            ledger.insert().values(
                run_id=run_id,
                team='t',
                project='web',
                specialist='coding',
                agent_path='supervisor>coding',
                model_id='m',
                input_tokens=1000,
                output_tokens=234,
                cost_usd=0.0125,
                created_at=time.time(),
            )
        )
    open_approval(store, run_id, 'apr-old', expires_after_s=None)
    time.sleep(0.01)  # distinct creation times: the order is the thing under test
    open_approval(
        store,
        run_id,
        'apr-new',
        tool='write_file',
        data_class='confidential',
        args={'path': 'hello.py', 'content': 'def hello(name):\n    return f"Hello, {name}!"\n'},
    )
    sign_in(client, 'alice-token')

    page = client.get('/approvals').text
    assert page.index('id="approval-apr-new"') < page.index('id="approval-apr-old"')  # newest first
    card = page[page.index('id="approval-apr-new"') : page.index('id="approval-apr-old"')]
    assert f'/runs/{run_id}' in card and 'supervisor&gt;coding' in card and 'write_file' in card
    assert 'dc-confidential' in card and '<span class="role">operator</span>' in card
    assert '$0.0125' in card and '1,234 tokens' in card
    assert 'data-expires="' in card and 'policy: deploys need a human' in card
    # the diff compares the proposed content with the file in the run's workspace
    assert '<span class="dl del">-    return &#34;hi &#34; + name</span>' in card
    assert '<span class="dl add">+    return f&#34;Hello, {name}!&#34;</span>' in card
    old_card = page[page.index('id="approval-apr-old"') :]
    assert '&#34;command&#34;: &#34;make deploy&#34;' in old_card and 'never' in old_card

    api = client.get('/api/approvals').json()['approvals']
    assert [a['approval_id'] for a in api] == ['apr-new', 'apr-old']
    assert api[0]['diff'] == {'path': 'hello.py', 'new_file': False, 'added': 1, 'removed': 1, 'note': None}
    assert api[0]['cost_so_far'] == pytest.approx(0.0125) and api[0]['tokens_so_far'] == 1234


def test_a_write_outside_the_workspace_is_reported_not_read(store, client, workspace, tmp_path):
    (tmp_path / 'secret.txt').write_text('TOP SECRET')
    RunRecords(store).create_run(
        run_id='r-esc',
        team='t',
        project='web',
        data_class='internal',
        task='t',
        factory=None,
        workspace=str(workspace),
        durable=False,
    )
    open_approval(store, 'r-esc', 'apr-esc', tool='write_file', args={'path': '../secret.txt', 'content': 'x'})
    sign_in(client, 'alice-token')
    page = client.get('/approvals/apr-esc').text
    assert 'escapes the workspace' in page and 'TOP SECRET' not in page


def test_new_approvals_show_up_in_the_polled_endpoints(store, shop_run, client):
    sign_in(client, 'alice-token')
    assert client.get('/api/approvals').json() == {'approvals': []}
    assert 'Nothing waiting for a decision' in client.get('/approvals/pending.html').text
    open_approval(store, shop_run.run_id, 'apr-live')
    assert [a['approval_id'] for a in client.get('/api/approvals').json()['approvals']] == ['apr-live']
    fragment = client.get('/approvals/pending.html').text
    assert 'data-approval-id="apr-live"' in fragment and '<html' not in fragment


def test_approve_with_a_reason_records_who_when_why_and_audits_it(store, shop_run, client):
    open_approval(store, shop_run.run_id, 'apr-1')
    csrf = sign_in(client, 'alice-token')
    before = time.time()
    r = client.post(
        '/approvals/apr-1/approve', data={'csrf_token': csrf, 'reason': 'looks safe'}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers['location'] == '/approvals?decided=apr-1'

    row = approval_row(store, 'apr-1')
    assert (row['status'], row['decider'], row['decider_role'], row['reason']) == (
        'approved',
        'alice',
        'operator',
        'looks safe',
    )
    assert row['decided_at'] >= before
    [entry] = [e for e in audit_entries(store, run_id=shop_run.run_id) if e.kind == 'approval_decision']
    assert entry.record['approval_id'] == 'apr-1' and entry.record['decider'] == 'alice'
    assert entry.record['decision'] == 'approved' and entry.record['reason'] == 'looks safe'

    page = client.get(r.headers['location']).text
    assert 'Approval apr-1 (run_command) approved by alice.' in page
    history = page[page.index('id="history"') :]
    assert 'apr-1' in history and 'alice' in history and 'looks safe' in history
    assert 'id="approval-apr-1"' not in page  # no longer pending


def test_reject_needs_a_reason_and_then_records_it(store, shop_run, client):
    open_approval(store, shop_run.run_id, 'apr-1')
    csrf = sign_in(client, 'carol-token')
    r = client.post('/approvals/apr-1/reject', data={'csrf_token': csrf, 'reason': '  '})
    assert r.status_code == 400 and 'a rejection needs a reason' in r.text
    assert approval_row(store, 'apr-1')['status'] == 'pending'
    r = client.post('/approvals/apr-1/reject', data={'csrf_token': csrf, 'reason': 'x' * 2001})
    assert r.status_code == 400 and 'over the limit' in r.text

    r = client.post(
        '/approvals/apr-1/reject', data={'csrf_token': csrf, 'reason': 'not on a Friday'}, follow_redirects=False
    )
    assert r.status_code == 303
    row = approval_row(store, 'apr-1')
    assert (row['status'], row['decider'], row['reason']) == ('rejected', 'carol', 'not on a Friday')


def test_the_json_api_decides_with_the_csrf_header(store, shop_run, client):
    open_approval(store, shop_run.run_id, 'apr-1')
    csrf = sign_in(client, 'alice-token')
    r = client.post('/api/approvals/apr-1/approve', json={'reason': 'ok'}, headers={'X-CSRF-Token': csrf})
    assert r.status_code == 200
    assert r.json()['status'] == 'approved' and r.json()['decider'] == 'alice'
    assert client.get('/api/approvals/apr-1').json()['reason'] == 'ok'


@pytest.mark.parametrize('how', ['missing', 'wrong', 'other-session', 'cross-origin'])
def test_decisions_without_the_sessions_csrf_token_are_refused(store, shop_run, client, app, how):
    open_approval(store, shop_run.run_id, 'apr-1')
    csrf = sign_in(client, 'alice-token')
    data, headers = {'reason': 'ok'}, {}
    if how == 'wrong':
        data['csrf_token'] = 'x' * len(csrf)
    elif how == 'other-session':
        with TestClient(app) as other:
            data['csrf_token'] = sign_in(other, 'carol-token')
    elif how == 'cross-origin':
        data['csrf_token'] = csrf
        headers['Origin'] = 'http://evil.example'
    r = client.post('/approvals/apr-1/approve', data=data, headers=headers)
    assert r.status_code == 403 and 'CSRF' in r.text
    assert approval_row(store, 'apr-1')['status'] == 'pending'
    r = client.post('/api/approvals/apr-1/approve', json={'reason': 'ok'}, headers={'X-CSRF-Token': 'nope'})
    assert r.status_code == 403 and r.json() == {'error': 'CSRF check failed: reload the page and try again'}
    assert approval_row(store, 'apr-1')['status'] == 'pending'


def test_an_operator_without_the_required_role_gets_403_and_nothing_changes(store, shop_run, client):
    open_approval(store, shop_run.run_id, 'apr-admin', role='admin')
    csrf = sign_in(client, 'alice-token')
    page = client.get('/approvals').text
    assert 'Needs role <span class="role">admin</span>; you have operator.' in page
    for path in ('/approvals/apr-admin/approve', '/approvals/apr-admin/reject'):
        r = client.post(path, data={'csrf_token': csrf, 'reason': 'mine'})
        assert r.status_code == 403 and 'needs role &#39;admin&#39;; alice has operator' in r.text
    row = approval_row(store, 'apr-admin')
    assert (row['status'], row['decider']) == ('pending', None)
    assert not [e for e in audit_entries(store) if e.kind == 'approval_decision']


def test_unknown_expired_and_already_decided_approvals(store, shop_run, client):
    open_approval(store, shop_run.run_id, 'apr-done')
    open_approval(store, shop_run.run_id, 'apr-late', expires_after_s=0.001)
    ApprovalQueue(store).approve('apr-done', decider='carol', roles=['operator'], reason='first')
    csrf = sign_in(client, 'alice-token')

    r = client.post('/approvals/apr-nope/approve', data={'csrf_token': csrf})
    assert r.status_code == 404 and 'unknown approval &#39;apr-nope&#39;' in r.text
    assert client.get('/api/approvals/apr-nope').status_code == 404
    assert client.get('/api/approvals/apr-d').status_code == 404  # a prefix does not name an approval in a URL

    r = client.post('/api/approvals/apr-late/approve', json={}, headers={'X-CSRF-Token': csrf})
    assert r.status_code == 410 and 'expired' in r.json()['error']
    assert approval_row(store, 'apr-late')['decider'] is None
    assert client.get('/api/approvals/apr-late').json()['status'] == 'expired'

    r = client.post('/approvals/apr-done/reject', data={'csrf_token': csrf, 'reason': 'second'})
    assert r.status_code == 409 and 'already approved by carol' in r.text
    row = approval_row(store, 'apr-done')
    assert (row['status'], row['decider'], row['reason']) == ('approved', 'carol', 'first')


@pytest.mark.anyio
async def test_a_paused_run_completes_when_approved_in_the_console(store, workspace):
    team = writer_team(str(workspace))
    app = create_app(store, operators=OPERATORS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url='http://console') as http:
        page = await http.get('/login')
        login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)
        await http.post('/login', data={'token': 'alice-token', 'login_csrf': login_csrf})
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', (await http.get('/approvals')).text).group(1)
        result = {}

        async def run() -> None:
            result['run'] = await team.run('Make hello friendlier', project='web')

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            with anyio.fail_after(30):
                while not (pending := (await http.get('/api/approvals')).json()['approvals']):
                    await anyio.sleep(0.05)
            [a] = pending
            assert (a['tool'], a['agent_path'], a['args']['path']) == ('write_file', 'supervisor>coding', 'hello.py')
            assert (await http.get(f'/api/runs/{a["run_id"]}')).json()['status'] == 'waiting'
            assert 'hi ' in (workspace / 'hello.py').read_text()  # nothing written before the decision
            r = await http.post(
                f'/api/approvals/{a["approval_id"]}/approve', json={'reason': 'fine'}, headers={'X-CSRF-Token': csrf}
            )
            assert r.status_code == 200
    assert result['run'].status == 'succeeded'
    assert 'Hello, {name}!' in (workspace / 'hello.py').read_text()


# ---------------------------------------------------------------------------------------------- runs and traces


def test_runs_list_with_filters(store, shop_run, client):
    RunRecords(store).create_run(
        run_id='other-run',
        team='writer',
        project='docs',
        data_class='public',
        task='other',
        factory=None,
        workspace=None,
        durable=False,
    )
    with store.engine.begin() as c:  # a running run's row is totalled at the end; until then the ledger tells
        c.execute(
            ledger.insert().values(
                run_id='other-run',
                team='writer',
                project='docs',
                specialist='supervisor',
                agent_path='supervisor',
                model_id='m',
                input_tokens=70,
                output_tokens=30,
                cost_usd=0.25,
                created_at=time.time(),
            )
        )
    sign_in(client, 'bob-token')
    page = client.get('/runs').text
    assert f'href="/runs/{shop_run.run_id}"' in page and 'href="/runs/other-run"' in page
    assert 'Build the shop' in page and 'status-succeeded' in page

    runs = client.get('/api/runs').json()['runs']
    assert [r['run_id'] for r in runs] == ['other-run', shop_run.run_id]  # newest first
    other = runs[0]
    assert (other['status'], other['cost_usd'], other['input_tokens'] + other['output_tokens']) == (
        'running',
        0.25,
        100,
    )
    shop = runs[1]
    assert (shop['team'], shop['project'], shop['status']) == ('shop', 'web', 'succeeded')
    assert shop['input_tokens'] + shop['output_tokens'] > 0 and shop['duration_s'] > 0
    assert [r['run_id'] for r in client.get('/api/runs?project=docs').json()['runs']] == ['other-run']
    assert [r['run_id'] for r in client.get('/api/runs?team=shop&status=succeeded').json()['runs']] == [shop_run.run_id]
    assert client.get('/api/runs?status=failed').json()['runs'] == []


def test_run_page_shows_the_trace_as_a_waterfall_with_parallel_delegations(store, shop_run, client):
    with store.engine.begin() as c:
        c.execute(
            sa.text(
                'INSERT INTO proctor_guard_events (run_id, agent_path, hook, guard, decision, reason, created_at) '
                "VALUES (:r, 'supervisor>coding', 'output', 'pii', 'redact', 'an email address', :t)"
            ),
            {'r': shop_run.run_id, 't': time.time()},
        )
    open_approval(store, shop_run.run_id, 'apr-1')
    sign_in(client, 'bob-token')
    page = client.get(f'/runs/{shop_run.run_id}').text

    rows = re.findall(
        r'<details class="wf-row cat-(\w+)[^"]*"[^>]*data-left="([\d.]+)" data-width="([\d.]+)">\s*<summary>\s*'
        r'<div class="wf-name" style="padding-left: ([\d.]+)em" title="([^"]+)"',
        page,
    )
    names = [r[4] for r in rows]
    assert names[0] == 'team.run' and 'delegate research' in names and 'delegate coding' in names
    bars = {r[4]: (float(r[1]), float(r[1]) + float(r[2])) for r in rows if r[0] == 'delegate'}
    (a0, a1), (b0, b1) = bars['delegate research'], bars['delegate coding']
    assert a0 < b1 and b0 < a1  # the two delegations' bars overlap on the time axis: they ran side by side
    assert page.count('title="ran at the same time as 1 sibling(s)">∥2</span>') == 2
    assert 'up to 2 delegations in parallel' in page
    # depth: a delegation sits below the supervisor's tool call
    depth = {r[4]: float(r[3]) for r in rows}
    assert depth['delegate coding'] > depth['team.run']

    agents = page[page.index('id="agents"') :]
    assert 'research did: find the prices' in agents and 'coding did: write the cart' in agents
    assert 'fake-research' in agents
    guards = page[page.index('id="guardrails"') :]
    assert 'an email address' in guards and 'gd-redact' in guards
    assert 'href="/approvals/apr-1"' in page[page.index('id="approvals"') :]
    assert 'FINAL: coding did: write the cart | research did: find the prices' in page

    data = client.get(f'/api/runs/{shop_run.run_id}').json()
    assert {s['name'] for s in data['spans']} >= {'team.run', 'delegate research', 'delegate coding'}
    assert [g['guard'] for g in data['guard_events']] == ['pii']


def test_a_run_without_stored_spans_is_drawn_from_its_records(store, client):
    team = Team(
        Supervisor(model=ScriptedModel([[delegate('research', 'a')], text('ok')])),
        [Specialist('research', 'R.', model=ScriptedModel(['found']))],
        name='untraced',
        durable=False,
        trace=False,
    )
    run = team.run_sync('go')
    sign_in(client, 'bob-token')
    page = client.get(f'/runs/{run.run_id}').text
    assert 'from run records' in page
    assert 'title="team.run"' in page and 'title="delegate research"' in page


def test_unknown_run_is_404(client):
    sign_in(client, 'bob-token')
    r = client.get('/runs/no-such-run')
    assert r.status_code == 404 and 'unknown run &#39;no-such-run&#39;' in r.text
    assert client.get('/api/runs/no-such-run').json() == {'error': "unknown run 'no-such-run'"}
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get('/runs').text).group(1)
    assert client.post('/runs/no-such-run/replay', data={'csrf_token': csrf}).status_code == 404


def test_replay_button_replays_with_no_live_calls_and_shows_the_match(store, shop_run, client):
    csrf = sign_in(client, 'bob-token')
    r = client.post(f'/runs/{shop_run.run_id}/replay', data={'csrf_token': csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers['location'] == f'/runs/{shop_run.run_id}#replay'
    page = client.get(r.headers['location']).text
    result = page[page.index('id="replay-result"') :]
    assert 'data-matched="true"' in result[:40] and 'Matched' in result
    assert 'replayed, 0 live' in result

    outcome = client.post(f'/api/runs/{shop_run.run_id}/replay', headers={'X-CSRF-Token': csrf}).json()
    assert outcome['matched'] is True and outcome['live_model_calls'] == 0 and outcome['replayed_model_calls'] == 4
    assert outcome['by'] == 'bob' and outcome['divergences'] == []


def test_replay_of_a_script_run_rebuilds_its_team_from_the_recording(store, client):
    """A run started from a script records no factory: its recording is enough for a replay."""
    team = Team(
        Supervisor(model=ScriptedModel([delegate('research', 'look'), lambda m: text('hi ' + tool_results(m)[0])])),
        [Specialist('research', 'R.', model=ScriptedModel([tool_call('note', {'n': 1}), text('x')]), tools=[note])],
        name='nofactory',
        durable=False,
    )
    run = team.run_sync('go')
    csrf = sign_in(client, 'bob-token')
    outcome = client.post(f'/api/runs/{run.run_id}/replay', headers={'X-CSRF-Token': csrf}).json()
    assert outcome['matched'] is True, outcome
    assert (outcome['replayed_model_calls'], outcome['live_model_calls'], outcome['replayed_tool_calls']) == (4, 0, 2)
    assert 'Matched' in client.get(f'/runs/{run.run_id}').text


class Answer(BaseModel):
    answer: str


def test_replay_of_a_run_it_cannot_rebuild_says_why(store, client):
    team = Team(
        Supervisor(model=ScriptedModel([final_output(answer='hi')]), output_type=Answer),
        [Specialist('research', 'R.', model=ScriptedModel(['x']))],
        name='nofactory',
        durable=False,
    )
    run = team.run_sync('go')
    csrf = sign_in(client, 'bob-token')
    outcome = client.post(f'/api/runs/{run.run_id}/replay', headers={'X-CSRF-Token': csrf}).json()
    assert outcome['matched'] is False and 'recorded no team factory' in outcome['summary']
    # what the recording lacks, exactly: the supervisor's output type (code, not recorded)
    assert "the output type of agent 'supervisor' (it answered through final_result)" in outcome['summary']
    assert 'Did not match' in client.get(f'/runs/{run.run_id}').text


def note(n: int) -> str:
    return f'noted {n}'


# ---------------------------------------------------------------------------------------------- usage


def seed_ledger(store) -> None:
    now = time.time()
    rows = [
        ('r1', 'shop', 'web', 'coding', 'big-model', 1000, 500, 0.50, now - 3 * 86400),
        ('r1', 'shop', 'web', 'research', 'small-model', 2000, 100, 0.02, now - 3 * 86400),
        ('r2', 'shop', 'docs', 'coding', 'big-model', 800, 200, 0.30, now - 3600),
        ('r3', 'support', 'web', 'supervisor', 'small-model', 300, 30, 0.01, now - 60),
        ('r4', 'support', 'web', 'supervisor', 'small-model', 300, 30, 9.99, now - 40 * 86400),  # outside 30 days
    ]
    with store.engine.begin() as c:
        for run_id, team, project, spec, model, tin, tout, cost, at in rows:
            c.execute(
                ledger.insert().values(
                    run_id=run_id,
                    team=team,
                    project=project,
                    specialist=spec,
                    agent_path=f'supervisor>{spec}',
                    model_id=model,
                    input_tokens=tin,
                    output_tokens=tout,
                    cost_usd=cost,
                    created_at=at,
                )
            )
        c.execute(
            budget_usage.insert().values(
                scope='project:web',
                limit_usd=0.6,
                limit_tokens=None,
                spent_usd=0.53,
                spent_tokens=3930,
                reserved_usd=0.0,
                reserved_tokens=0,
                updated_at=now,
            )
        )
        c.execute(
            budget_usage.insert().values(
                scope='team:shop@2026-01',
                limit_usd=10.0,
                limit_tokens=None,
                spent_usd=0.82,
                spent_tokens=4600,
                reserved_usd=0.0,
                reserved_tokens=0,
                updated_at=now,
            )
        )


def test_usage_by_each_dimension_over_time(store, client):
    seed_ledger(store)
    sign_in(client, 'bob-token')
    by_team = client.get('/api/usage?by=team&days=30').json()
    assert [(t['name'], round(t['cost_usd'], 2), t['calls'], t['runs']) for t in by_team['totals']] == [
        ('shop', 0.82, 3, 2),
        ('support', 0.01, 1, 1),
    ]
    assert by_team['series']['bucket_s'] == 86400
    assert round(sum(by_team['series']['values']['shop']), 2) == 0.82
    by_model = client.get('/api/usage?by=model_id&metric=tokens&days=7').json()
    assert {t['name']: t['input_tokens'] + t['output_tokens'] for t in by_model['totals']} == {
        'big-model': 2500,
        'small-model': 2430,
    }
    by_spec = client.get('/api/usage?by=specialist&days=1&project=docs').json()
    assert [(t['name'], t['input_tokens']) for t in by_spec['totals']] == [('coding', 800)]
    assert by_spec['series']['bucket_s'] == 3600
    by_project = client.get('/api/usage?by=project&days=90').json()
    assert {t['name']: round(t['cost_usd'], 2) for t in by_project['totals']} == {'web': 10.52, 'docs': 0.3}


def test_usage_page_has_a_chart_and_budgets(store, client):
    seed_ledger(store)
    sign_in(client, 'bob-token')
    page = client.get('/usage?by=model_id&days=30').text
    assert '<svg' in page and 'role="img"' in page and page.count('<rect') >= 3
    assert '<title>big-model · ' in page and '$0.5000</title>' in page
    assert 'id="total-cost">$0.8300<' in page
    budgets = page[page.index('id="budgets"') :]
    assert 'data-scope="project:web"' in budgets and 'level-near' in budgets and '88.3%' in budgets
    assert 'team shop' in budgets and '2026-01' in budgets and '8.2%' in budgets
    empty = client.get('/usage?days=1&team=nobody').text
    assert 'no usage in this range' in empty


@pytest.mark.parametrize('query', ['by=colour', 'metric=joules', 'days=2'])
def test_usage_rejects_bad_parameters(client, query):
    sign_in(client, 'bob-token')
    r = client.get(f'/api/usage?{query}')
    assert r.status_code == 400 and 'must be' in r.json()['error']


# ---------------------------------------------------------------------------------------------- config and CLI


@pytest.fixture
def cli_main():
    """`proctor.cli.main`, in process; its logging setup writes to this test's captured stderr, so undo it after."""
    import structlog

    from proctor.cli import main

    yield main
    structlog.reset_defaults()


def test_operators_from_proctor_toml(tmp_path, store):
    cfg = tmp_path / 'proctor.toml'
    cfg.write_text(f'[operators.dana]\ntoken_sha256 = "{hash_token("dana-token")}"\nroles = ["operator", "admin"]\n')
    ops = load_operators(cfg)
    assert ops['dana'].roles == frozenset({'operator', 'admin'})
    with TestClient(create_app(store, config=cfg)) as c:
        sign_in(c, 'dana-token')
        assert 'dana' in c.get('/runs').text


@pytest.mark.parametrize(
    'body,message',
    [
        (
            '[operators.eve]\ntoken_sha256 = "abc"\nroles = []\n',
            'operators.eve.token_sha256: token_sha256 must be 64 hex',
        ),
        (
            f'[operators.eve]\ntoken_sha256 = "{"a" * 64}"\nroles = "admin"\n',
            'operators.eve.roles: roles must be a list',
        ),
        (f'[operators.eve]\ntoken = "{"a" * 64}"\n', "operators.eve: unknown keys ['token']"),
        (
            f'[operators.a]\ntoken_sha256 = "{"a" * 64}"\n[operators.b]\ntoken_sha256 = "{"a" * 64}"\n',
            "operators 'a' and 'b' share a token",
        ),
        ('[operators\n', 'invalid TOML'),
    ],
)
def test_bad_operator_config_names_the_file_and_key(tmp_path, body, message):
    cfg = tmp_path / 'proctor.toml'
    cfg.write_text(body)
    with pytest.raises(ConfigError) as e:
        load_operators(cfg)
    assert str(e.value).startswith(str(cfg)) and message in str(e.value)


def test_cli_operator_token_prints_a_hash_that_signs_in(tmp_path, capsys, cli_main):
    main = cli_main
    main(['operator-token', 'frank', '--role', 'operator', '--role', 'admin'])
    out = capsys.readouterr()
    token = re.search(r'\(shown once; give it to them, do not store it\): (\S+)', out.err).group(1)
    cfg = tmp_path / 'proctor.toml'
    cfg.write_text(out.out)
    ops = load_operators(cfg)
    assert ops['frank'].token_sha256 == hash_token(token) and ops['frank'].roles == {'operator', 'admin'}
    assert token not in out.out


def test_cli_console_binds_loopback_and_warns_for_other_hosts(tmp_path, monkeypatch, capsys, cli_main):
    import uvicorn

    main = cli_main
    served = []
    monkeypatch.setattr(uvicorn, 'run', lambda app, **kw: served.append(kw))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(['--state-dir', str(tmp_path / 'state'), 'console'])
    assert e.value.code == 1 and 'proctor.toml: file not found' in capsys.readouterr().err
    (tmp_path / 'proctor.toml').write_text(
        f'[operators.gus]\ntoken_sha256 = "{hash_token("t")}"\nroles = ["operator"]\n'
    )

    main(['--state-dir', str(tmp_path / 'state'), 'console', '--port', '8765'])
    assert served[-1]['host'] == '127.0.0.1' and served[-1]['port'] == 8765
    assert 'warning' not in capsys.readouterr().err

    main(['--state-dir', str(tmp_path / 'state'), 'console', '--host', '0.0.0.0'])
    assert served[-1]['host'] == '0.0.0.0'
    assert 'warning: binding to 0.0.0.0: the console is reachable from the network' in capsys.readouterr().err


def test_cli_console_refuses_a_config_without_operators(tmp_path, capsys, cli_main):
    main = cli_main
    cfg = tmp_path / 'p.toml'
    cfg.write_text('[models]\n')
    with pytest.raises(SystemExit):
        main(['--state-dir', str(tmp_path / 'state'), 'console', '--config', str(cfg)])
    assert (
        capsys.readouterr().err.strip()
        == f'error: {cfg}: no [operators.NAME] tables: nobody could sign in (proctor operator-token NAME)'
    )


def test_json_errors_are_one_line(client):
    sign_in(client, 'bob-token')
    r = client.get('/api/nothing-here')
    assert r.status_code == 404 and json.loads(r.text) == {'error': 'Not Found'}
