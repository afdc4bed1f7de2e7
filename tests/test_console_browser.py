"""The console in a real headless Chromium: an operator approves a paused run's file write, the run
completes, and a reviewer reads the run's trace with its parallel delegations.

Needs the Debian packages `chromium` and `chromium-driver` (`make system-deps`); Playwright drives
the system browser. Screenshots of the inbox, the trace and usage go to `docs/screenshots/`.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import anyio
import pytest

from proctor import Specialist, Supervisor, Team
from proctor.console import Operator, create_app
from proctor.guardrails import ApprovalPolicy, ApprovalRule
from proctor.models._budget import Budget
from proctor.models._router import ModelRouter
from proctor.state._store import StateStore
from proctor.testing import ScriptedModel, delegate, fail, text, tool_call, tool_results, turn_of
from proctor.tools import read_file, write_file

pytestmark = pytest.mark.browser

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / 'docs' / 'screenshots'
NEW_HELLO = 'def hello(name: str) -> str:\n    """A friendlier greeting."""\n    return f"Hello, {name}!"\n'


def greeter_team(workspace: str) -> Team:
    """Research and coding in parallel; coding's write to hello.py waits for an operator (durable run)."""

    def supervisor(messages):
        results = tool_results(messages)
        if not results:
            return [delegate('research', 'How should we greet users?'), delegate('coding', 'Make hello() friendlier')]
        return text('Done. ' + ' '.join(sorted(results)))

    events: dict = {}

    def coding_started() -> anyio.Event:  # made on first use, in the run's event loop
        return events.setdefault('coding', anyio.Event())

    async def researcher(messages):
        # Answers once coding is under way: the two delegations overlap in time, as the waterfall shows.
        with anyio.fail_after(30):
            await coding_started().wait()
        return text('Users like a warm, short greeting with their name.')

    def coder(messages):
        if turn_of(messages) == 0:
            coding_started().set()
            return tool_call('write_file', {'path': 'hello.py', 'content': NEW_HELLO})
        return text('Updated hello.py: ' + tool_results(messages)[-1])

    def model(name: str, script, usd_in: float, usd_out: float) -> dict:
        return {
            'model': ScriptedModel(script, name=name),
            'usd_per_m_input': usd_in,
            'usd_per_m_output': usd_out,
            'data_classes': ['public', 'internal', 'confidential'],
        }

    def flaky(messages):
        raise fail(503)  # research's first choice is down: haiku-sim serves instead (a fallback)

    router = ModelRouter(
        {
            'sonnet-sim': model('sonnet-sim', supervisor, 3.0, 15.0),
            'flaky-sim': model('flaky-sim', flaky, 0.5, 2.0),
            'haiku-sim': model('haiku-sim', researcher, 0.8, 4.0),
            'coder-sim': model('coder-sim', coder, 1.0, 5.0),
        },
        budgets=[Budget('project', 'web', usd=0.25)],
    )
    return Team(
        Supervisor(model='sonnet-sim'),
        [
            Specialist('research', 'Research.', model='flaky-sim', fallback_models=['haiku-sim']),
            Specialist('coding', 'Code.', model='coder-sim', tools=[write_file, read_file]),
        ],
        name='greeter',
        workspace=workspace,
        router=router,
        guardrails=[ApprovalPolicy([ApprovalRule(tool='write_file', reason='changes a file in the workspace')])],
    )


@pytest.fixture
def console(state_dir):
    """The console served by uvicorn on a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    app = create_app(
        StateStore(state_dir),
        operators=[
            Operator.with_token('alice', 'alice-token', ['operator']),
            Operator.with_token('bob', 'bob-token', ['reviewer']),
        ],
    )
    server = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=0, log_level='warning', lifespan='off'))
    started = threading.Event()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    # `started` flips once the socket listens; wait on that state (bounded), never on a fixed sleep
    for _ in range(600):
        if server.started:
            break
        started.wait(0.05)
    assert server.started, 'uvicorn did not start'
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f'http://127.0.0.1:{port}'
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def browser(tmp_path):
    """Launches system Chromium with a fresh profile directory for each sign-in (`context(name)`)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f'{CHROMIUM} is missing: install the Debian packages chromium and chromium-driver (make system-deps)'
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        contexts = []

        def context(name: str):
            ctx = pw.chromium.launch_persistent_context(
                str(tmp_path / f'profile-{name}'),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={'width': 1280, 'height': 900},
                device_scale_factor=1,
            )
            ctx.set_default_timeout(30_000)
            contexts.append(ctx)
            return ctx.pages[0] if ctx.pages else ctx.new_page()

        yield context
        for ctx in contexts:
            ctx.close()


def sign_in(page, base: str, token: str) -> None:
    from playwright.sync_api import expect

    page.goto(f'{base}/approvals')
    expect(page).to_have_url(f'{base}/login?next=/approvals')
    page.fill('#token', token)
    page.click('button[type=submit]')
    expect(page).to_have_url(f'{base}/approvals')


def test_operator_approves_a_paused_run_and_a_reviewer_reads_its_trace(state_dir, tmp_path, console, browser):
    from playwright.sync_api import expect

    workspace = tmp_path / 'ws'
    workspace.mkdir()
    (workspace / 'hello.py').write_text('def hello(name):\n    return "hi " + name\n')
    team = greeter_team(str(workspace))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # the operator is already looking at the inbox when the run asks
    page = browser('alice')
    sign_in(page, console, 'alice-token')
    expect(page.locator('#no-pending')).to_be_visible()

    outcome: dict = {}

    def run() -> None:
        try:
            outcome['result'] = anyio.run(lambda: team.run('Make the greeting friendlier', project='web'))
        except BaseException as e:
            outcome['error'] = e

    runner = threading.Thread(target=run, daemon=True)
    runner.start()

    card = page.locator('article.approval[data-approval-id]')
    expect(card).to_have_count(1)  # arrived by polling: no reload
    expect(card.locator('code.tool')).to_have_text('write_file')
    expect(card.locator('.path').first).to_have_text('supervisor>coding')
    expect(card.locator('.dl.del')).to_have_text(['-def hello(name):', '-    return "hi " + name'])
    expect(card.locator('.dl.add').last).to_have_text('+    return f"Hello, {name}!"')
    expect(card.locator('.role')).to_have_text('operator')
    expect(card.locator('time.expiry')).to_contain_text('in ')
    expect(page.locator('#pending-count')).to_have_text('1')
    expect(card.locator('header .badge.status-pending')).to_have_text('waiting for operator')
    page.screenshot(path=str(SCREENSHOTS / 'inbox.png'), full_page=True)

    # a reviewer opens the waiting run: the pending approval reads as waiting, never as 'approve'
    run_href = card.locator('a[href^="/runs/"]').first.get_attribute('href')
    review = browser('bob')
    sign_in(review, console, 'bob-token')
    review.goto(f'{console}{run_href}')
    expect(review.locator('#run-status')).to_have_text('waiting')
    # what it has spent so far, from the ledger (not 0 requests while the ledger counts its calls)
    expect(review.locator('#run-tokens')).to_contain_text('(so far)')
    expect(review.locator('#run-tokens')).not_to_contain_text(re.compile(r'(^|\D)0 requests'))
    expect(review.locator('#guardrails tbody tr .badge')).to_have_text('needs approval: waiting for operator')
    expect(review.locator('#approvals tbody tr .badge')).to_have_text('waiting for operator')
    expect(review.locator('#guardrails')).not_to_contain_text(re.compile(r'\bapprove\b'))
    # the waiting coding agent's span is kept open, drawn as running
    expect(review.locator('details.wf-row.open-span[data-category=agent]').first).to_contain_text('running · ')
    review.screenshot(path=str(SCREENSHOTS / 'waiting.png'), full_page=True)

    card.locator('button.reject').click()  # no reason yet: the page says so and nothing is sent
    assert card.locator('textarea[name=reason]').evaluate('t => t.validationMessage') == 'A rejection needs a reason.'
    expect(card.locator('.badge.status-pending')).to_be_visible()
    card.locator('textarea[name=reason]').fill('Reviewed the diff: safe change.')
    card.locator('button.approve').click()
    expect(page.locator('.notice.ok')).to_contain_text('approved by alice')
    expect(page.locator('#history tbody tr')).to_have_count(1)
    expect(page.locator('#history tbody tr td.reason')).to_have_text('Reviewed the diff: safe change.')

    runner.join(60)
    assert not runner.is_alive(), 'the run did not finish after the approval'
    assert 'error' not in outcome, outcome.get('error')
    result = outcome['result']
    assert result.status == 'succeeded'
    assert 'Hello, {name}!' in (workspace / 'hello.py').read_text()

    page.goto(f'{console}/runs')
    page.click(f'a[href="/runs/{result.run_id}"]')
    expect(page.locator('#run-status')).to_have_text('succeeded')

    # the reviewer (no operator role) reads the finished run's trace
    review.goto(f'{console}/runs/{result.run_id}')
    # research was served by its fallback: the route line says which model served, from which, and why
    route = review.locator('article.agent[data-agent-path="supervisor>research"] .route')
    expect(route).to_contain_text('route: flaky-sim → haiku-sim (fell back: flaky-sim failed: ModelHTTPError')
    expect(route).to_contain_text('503')
    expect(review.locator('#guardrails .badge').first).to_have_text('needs approval: approved by alice')
    delegations = review.locator('details.wf-row[data-category=delegate]')
    expect(delegations).to_have_count(2)
    expect(delegations.locator('.wf-name')).to_contain_text(['delegate research', 'delegate coding'])
    research = delegations.filter(has_text='delegate research').locator('.bar').bounding_box()
    coding = delegations.filter(has_text='delegate coding').locator('.bar').bounding_box()
    # side by side in time: the two bars overlap horizontally
    assert research['x'] < coding['x'] + coding['width'] and coding['x'] < research['x'] + research['width']
    expect(review.locator('#approvals tbody tr')).to_contain_text('approved')
    # the approval's request and decision are marked on the write_file tool span's row
    marks = review.locator('details.wf-row', has_text='execute_tool write_file').locator('.mark-approval')
    expect(marks).to_have_count(2)
    assert 'decider=alice' in marks.last.get_attribute('title')
    delegations.filter(has_text='delegate coding').locator('summary').click()
    expect(review.locator('details.wf-row[open] .wf-detail')).to_contain_text('proctor.agent_path')
    review.locator('#trace').screenshot(path=str(SCREENSHOTS / 'trace.png'))
    review.screenshot(path=str(SCREENSHOTS / 'run.png'), full_page=True)

    review.goto(f'{console}/usage?by=model_id&days=1')
    expect(review.locator('#usage-totals tbody tr')).to_have_count(3)
    expect(review.locator('#budgets tbody tr').first).to_contain_text('project web')
    review.screenshot(path=str(SCREENSHOTS / 'usage.png'), full_page=True)
