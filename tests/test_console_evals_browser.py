"""The Evaluations page in a real headless Chromium: per suite, the results table and the pass rate
against cost per case chart with the model routing picks now ringed; after a regression the ring moves."""

from __future__ import annotations

import threading

import pytest
from test_console_browser import SCREENSHOTS, browser, sign_in  # noqa: F401  (fixtures)

from proctor.console import Operator, create_app
from proctor.models._eval import Evaluator
from proctor.models._eval_suite import load_suite
from proctor.state._store import StateStore

pytestmark = pytest.mark.browser


@pytest.fixture
def evals_console(state_dir):
    """The console over the example's router (scripted models), on a free loopback port."""
    import uvicorn

    from proctor.examples import evaluate_models

    flags: dict = {}
    router = evaluate_models.build(flags)
    store = StateStore(state_dir)
    app = create_app(store, operators=[Operator.with_token('bob', 'bob-token', ['reviewer'])], router=router)
    server = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=0, log_level='warning', lifespan='off'))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    ready = threading.Event()
    for _ in range(600):
        if server.started:
            break
        ready.wait(0.05)
    assert server.started, 'uvicorn did not start'
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f'http://127.0.0.1:{port}', router, store, flags
    server.should_exit = True
    thread.join(10)


def test_the_evaluations_page_marks_the_routing_choice_on_the_frontier(evals_console, browser):  # noqa: F811
    from playwright.sync_api import expect

    base, router, store, flags = evals_console
    from proctor.examples.evaluate_models import HERE

    page = browser('bob')
    sign_in(page, base, 'bob-token')
    page.goto(f'{base}/evals')
    expect(page.locator('#no-evals')).to_be_visible()

    evaluator = Evaluator(router, store)

    def evaluate(suite: str) -> None:  # in a thread: Playwright's sync API owns this thread's event loop
        done: dict = {}
        t = threading.Thread(
            target=lambda: done.setdefault('report', evaluator.run_sync(load_suite(HERE / 'evals' / f'{suite}.toml')))
        )
        t.start()
        t.join(60)
        assert 'report' in done, f'the {suite} evaluation did not finish'

    evaluate('triage')
    evaluate('reasoning')

    page.click('nav a[href="/evals"]')
    expect(page.locator('nav a.active')).to_have_text('Evaluations')
    expect(page.locator('#eval-suites select[name=suite]')).to_have_value('reasoning')
    page.select_option('#eval-suites select[name=suite]', 'triage')
    page.click('#eval-suites button[type=submit]')
    expect(page).to_have_url(f'{base}/evals?suite=triage')
    rows = page.locator('#eval-results tbody tr')
    expect(rows).to_have_count(3)
    expect(rows.first.locator('td').first).to_have_text('tiny')  # cheapest per case first
    expect(rows.first.locator('.pass-rate')).to_have_text('100.0%')
    expect(page.locator('#routing tr[data-specialist=triage] .routed-model')).to_have_text('tiny')
    expect(page.locator('#frontier svg circle.point')).to_have_count(3)
    ring = page.locator('#frontier svg circle.routed')
    expect(ring).to_have_count(1)
    assert ring.get_attribute('data-model') == 'tiny'
    expect(page.locator('#frontier svg')).to_contain_text('tiny ← triage (internal)')
    page.screenshot(path=str(SCREENSHOTS / 'evaluations.png'), full_page=True)

    # the cheap model regresses: after the next evaluation the page rings mid
    flags['tiny_regressed'] = True
    evaluate('triage')
    page.reload()
    expect(page.locator('#routing tr[data-specialist=triage] .routed-model')).to_have_text('mid')
    assert page.locator('#frontier svg circle.routed').get_attribute('data-model') == 'mid'
    expect(page.locator('#eval-results tr[data-model=tiny] .pass-rate')).to_have_text('77.8%')
    expect(page.locator('#eval-runs tbody tr')).to_have_count(2)

    page.goto(f'{base}/evals?suite=reasoning')
    expect(page.locator('#routing tr[data-specialist=analyst] .routed-model')).to_have_text('strong')
    api = page.request.get(f'{base}/api/evals?suite=reasoning').json()
    assert api['suites'] == ['reasoning', 'triage']
    assert {r['model_id']: r['pass_rate'] for r in api['suite']['latest']} == {'tiny': 0.2, 'mid': 0.8, 'strong': 1.0}
    page.goto(f'{base}/evals?suite=nope')
    expect(page.locator('main')).to_contain_text("no evaluation of suite 'nope' recorded")
