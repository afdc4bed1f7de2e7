"""Routing policy: cost tiers, a confidential task kept on an approved model, a provider outage.

`examples/proctor.toml` is the policy a team would keep under version control: four models (a small
cheap one, two strong cloud ones, one served on-prem), which data classes each is approved for, a
cheap tier for triage and a strong one for analysis, an EU-only rule for confidential data and two
budgets. This script binds each model id to a scripted model (offline, no API key) and runs:

1. an internal ticket: triage goes to the small model, the analysis to the strong one;
2. the same ticket marked confidential: every agent stays on the on-prem model, the only one approved;
3. the strong provider down (HTTP 503): its calls fall back to the next approved model.

It prints which model served each agent, why, and what it cost (from the ledger), then usage:

    python examples/routing_policy.py
    proctor --state-dir DIR usage --by model        # the same ledger from the command line
    proctor models list --config examples/proctor.toml
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from proctor import Ledger, ModelRouter, Specialist, Supervisor, Team
from proctor.testing import ScriptedModel, delegate, fail, final_output, last_user_prompt, text, tool_results

HERE = Path(__file__).resolve().parent
CONFIG = HERE / 'proctor.toml'
TICKET = 'Customer: the CSV export button crashes the app on Safari since yesterday. Account 4471.'


class Triage(BaseModel):
    category: Literal['bug', 'question', 'billing']
    urgency: Literal['low', 'high']


def llm(name: str, outage: dict[str, bool]) -> ScriptedModel:
    """One provider: as the supervisor it delegates then summarises; as a specialist it answers."""

    def answer(messages: list[Any], info: Any) -> Any:
        if outage.get(name):
            raise fail(503, f'{name} is overloaded', model_name=name)
        tools = {t.name for t in info.function_tools}
        if 'delegate_to_triage' in tools:  # serving the supervisor
            results = tool_results(messages)
            if not results:
                return [delegate('triage', TICKET), delegate('analyst', f'Find the likely cause: {TICKET}')]
            return text(f'[{name}] ' + ' / '.join(results))
        if info.output_tools:  # serving triage (structured output)
            return final_output(category='bug', urgency='high')
        return text(f'{name}: likely a Blob URL revocation race in Safari 17 ({last_user_prompt(messages)[:24]}...)')

    return ScriptedModel(answer, name=name)


def build_team(outage: dict[str, bool], *, durable: bool = False) -> Team:
    models = {mid: llm(mid, outage) for mid in ('mini', 'sonnet', 'gpt4o', 'onprem')}
    router = ModelRouter.from_file(CONFIG, models=models)
    return Team(
        Supervisor(),
        [
            Specialist('triage', 'Classify the ticket.', output_type=Triage),
            Specialist('analyst', 'Find the likely cause of the problem.'),
        ],
        name='support',
        router=router,
        durable=durable,
    )


def show(title: str, team: Team, result: Any) -> list[tuple[str, str]]:
    print(f'\n== {title}')
    print(f'   output: {result.output}')
    reasons = {d.agent_path: d.route_reason for d in result.delegations}
    served = []
    for e in Ledger(team.store).entries(run_id=result.run_id):
        served.append((e.agent_path, e.model_id))
        print(f'   {e.agent_path:<20} served by {e.model_id:<7} ${e.cost_usd:.6f}')
    for path, why in sorted(reasons.items()):
        print(f'   why {path}: {why}')
    failed = [a for a in Ledger(team.store).attempts(result.run_id) if a['status'] != 'ok']
    for a in failed:
        print(f'   attempt on {a["model_id"]} by {a["agent_path"]} {a["status"]}: {a["error"][:60]}')
    print(f'   run cost ${result.cost_usd:.6f}')
    return served


def main(argv: list[str] | None = None) -> dict[str, list[tuple[str, str]]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--state-dir', default=None, help='default: $PROCTOR_STATE_DIR, else a new temporary folder')
    p.add_argument('--durable', action='store_true', help='run each task as a durable workflow')
    args = p.parse_args(argv)
    args.state_dir = (
        args.state_dir or os.environ.get('PROCTOR_STATE_DIR') or tempfile.mkdtemp(prefix='proctor-routing-')
    )
    os.environ['PROCTOR_STATE_DIR'] = args.state_dir
    outage: dict[str, bool] = {}
    team = build_team(outage, durable=args.durable)
    seen = {}
    seen['tiers'] = show(
        '1. cost tiers: small model for triage, strong model for analysis',
        team,
        team.run_sync(TICKET, project='support', data_class='internal'),
    )
    seen['confidential'] = show(
        '2. confidential: every agent stays on the approved on-prem model',
        team,
        team.run_sync(TICKET, project='support', data_class='confidential'),
    )
    outage['sonnet'] = True
    seen['outage'] = show(
        '3. sonnet down (503): its calls fall back to the next approved model',
        team,
        team.run_sync(TICKET, project='support', data_class='internal'),
    )
    print('\n== usage by model (the ledger)')
    for row in Ledger(team.store).usage('model'):
        print(
            f'   {row.key:<7} {row.calls} calls  {row.input_tokens + row.output_tokens:>5} tokens  ${row.cost_usd:.6f}'
        )
    print(f'\n   proctor --state-dir {args.state_dir} usage --by project')
    return seen


if __name__ == '__main__':
    main()
