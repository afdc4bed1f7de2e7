"""The README's quickstart runs exactly as written, on the embedded model, in a fresh process.

Skips when the embedded model (llama-cpp-python and the SmolLM2 GGUF) is not installed, unless
`PROCTOR_REQUIRE_LOCAL_MODEL=1` (CI), where a missing model is a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from proctor.exceptions import LocalModelUnavailable

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / 'README.md'


def quickstart_code() -> str:
    """The first ```python block under the README's `## Quickstart` heading."""
    text = README.read_text(encoding='utf-8')
    section = re.search(r'^## Quickstart\n(.*?)(?=^## )', text, re.S | re.M)
    assert section, 'README.md has no "## Quickstart" section'
    block = re.search(r'^```python\n(.*?)^```', section.group(1), re.S | re.M)
    assert block, 'the Quickstart section of README.md has no ```python block'
    return block.group(1)


def test_the_quickstart_is_a_complete_script() -> None:
    code = quickstart_code()
    compile(code, 'README.md quickstart', 'exec')
    assert 'asyncio.run(main())' in code and "'local:smollm2'" in code


def _require_local_model() -> None:
    from proctor.models import build_model

    try:
        build_model('local:smollm2')
    except LocalModelUnavailable as e:
        if os.environ.get('PROCTOR_REQUIRE_LOCAL_MODEL') == '1':
            pytest.fail(f'PROCTOR_REQUIRE_LOCAL_MODEL=1 but the embedded model is unavailable: {e}')
        pytest.skip(f'embedded model unavailable: {e}')


@pytest.mark.local_model
@pytest.mark.timeout(600)  # ~20 s alone; a 2-core machine shared with other work can be many times slower
def test_the_quickstart_runs_as_written_and_prints_a_result(tmp_path: Path) -> None:
    _require_local_model()
    script = tmp_path / 'quickstart.py'
    script.write_text(quickstart_code(), encoding='utf-8')
    state = tmp_path / 'state'
    env = {**os.environ, 'PROCTOR_STATE_DIR': str(state)}
    env.pop('PROCTOR_DATABASE_URL', None)
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=590
    )
    assert proc.returncode == 0, f'the quickstart failed:\n{proc.stderr[-3000:]}'
    lines = proc.stdout.splitlines()
    delegation = [ln for ln in lines if ln.startswith('poet on local:smollm2 (succeeded): ')]
    assert len(delegation) == 1 and len(delegation[0]) > len('poet on local:smollm2 (succeeded): ')
    answer = [ln for ln in lines if ln.startswith('answer: ')]
    assert answer and answer[0].removeprefix('answer: ').strip(), proc.stdout
    run_line = re.search(r'^run ([0-9a-f]{32}): (\d+) tokens in, (\d+) out$', proc.stdout, re.M)
    assert run_line and int(run_line.group(2)) > 0 and int(run_line.group(3)) > 0, proc.stdout

    # The run is where the README says: recorded in the state dir, durable, succeeded.
    from proctor.state._records import RunRecords
    from proctor.state._store import StateStore

    run = RunRecords(StateStore(state)).get(run_line.group(1))
    assert (run.status, run.team, run.durable) == ('succeeded', 'quickstart', True)
    assert [(d.specialist, d.status, d.model_id) for d in run.delegations] == [('poet', 'succeeded', 'local:smollm2')]

    # ... and replays as the README says, from the recording, with zero live model calls.
    replay = subprocess.run(
        [sys.executable, '-m', 'proctor', 'replay', run.run_id, '--team', 'quickstart.py:team'],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replay.returncode == 0, replay.stderr[-2000:]
    assert '0 live' in replay.stdout and 'no divergence' in replay.stdout, replay.stdout


def _links(path: Path) -> list[str]:
    text = re.sub(r'^```.*?^```', '', path.read_text(encoding='utf-8'), flags=re.S | re.M)  # not in code blocks
    return re.findall(r'\]\(([^)\s]+)\)', text)


@pytest.mark.parametrize('doc', ['README.md', *sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'docs').glob('*.md'))])
def test_documentation_links_stay_in_the_repository_and_resolve(doc: str) -> None:
    source = ROOT / doc
    for link in _links(source):
        if link.startswith(('http://', 'https://', 'mailto:')):
            continue
        target_path = link.split('#', 1)[0]
        if not target_path:
            continue  # an anchor on the same page
        target = (source.parent / target_path).resolve()
        assert target.is_relative_to(ROOT), f'{doc} links outside the repository: {link}'
        assert target.exists(), f'{doc} links to {link}, which does not exist'
    assert '../shared' not in source.read_text(encoding='utf-8'), f'{doc} points at ../shared/'
