"""The public API type-checks in pyright's strict mode as a user's code sees it: a team's result is typed by
its supervisor's output type, statuses are literals, and a wrong use is reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYRIGHT = Path(sys.executable).with_name('pyright')

USER_CODE = """
from typing import assert_type

from pydantic import BaseModel

from proctor import Specialist, Supervisor, Team, TeamResult
from proctor.state import RunStatus
from proctor.testing import ScriptedModel


class Plan(BaseModel):
    steps: list[str]


async def main() -> None:
    planner = Supervisor(model=ScriptedModel(['{"steps": []}']), output_type=Plan)
    team = Team(planner, [Specialist('worker', 'Work.', model='test')])
    result = await team.run('plan it')
    assert_type(result, TeamResult[Plan])
    assert_type(result.output, Plan)
    assert_type(result.status, RunStatus)

    plain = Team(Supervisor(model='test'), [Specialist('worker', 'Work.')], durable=False)
    assert_type(plain.run_sync('go').output, str)

    wrong: int = result.output  # the one error this file must produce
    print(wrong)
"""


@pytest.mark.skipif(not PYRIGHT.exists(), reason='pyright is a dev dependency (make test installs it)')
def test_the_public_api_is_typed_by_the_supervisors_output(tmp_path: Path) -> None:
    (tmp_path / 'pkg').mkdir()
    (tmp_path / 'pkg' / 'proctor').symlink_to(ROOT)  # the repository root is the package
    (tmp_path / 'user.py').write_text(USER_CODE)
    (tmp_path / 'pyrightconfig.json').write_text(
        json.dumps({'typeCheckingMode': 'strict', 'pythonVersion': '3.11', 'extraPaths': [str(tmp_path / 'pkg')]})
    )
    out = subprocess.run(
        [str(PYRIGHT), '--outputjson', '--pythonpath', sys.executable, 'user.py'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(out.stdout)
    errors = [
        (d['range']['start']['line'] + 1, d['message'].splitlines()[0])
        for d in report['generalDiagnostics']
        if d['severity'] == 'error' and d['file'].endswith('user.py')
    ]
    wrong_line = (
        USER_CODE.splitlines().index('    wrong: int = result.output  # the one error this file must produce') + 1
    )
    assert errors == [(wrong_line, 'Type "Plan" is not assignable to declared type "int"')], errors
