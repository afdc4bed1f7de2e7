"""The model registry and policy file: loading, validation errors that name file/key/reason, `proctor models list`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest

from proctor import ModelRegistry, ModelRouter, UnknownModelError
from proctor.exceptions import ConfigError
from proctor.orchestrator import Budget, load_config
from proctor.testing import ScriptedModel

GOOD = """
[models.mini]
model = "openai:gpt-4o-mini"
version = "2024-07-18"
usd_per_m_input = 0.15
usd_per_m_output = 0.60
latency = "fast"
context_window = 128000
capabilities = ["cheap", "classification"]
data_classes = ["public", "internal"]
region = "us"

[models.sonnet]
model = "anthropic:claude-sonnet-4-5"
usd_per_m_input = 3.0
usd_per_m_output = 15.0
p50_ms = 2500
capabilities = ["reasoning", "coding"]
data_classes = ["public", "internal"]
region = "us"

[models.onprem]
model = "openai-compatible:llama3.1"
base_url = "http://127.0.0.1:11434/v1"
capabilities = ["reasoning", "coding"]
data_classes = ["public", "internal", "confidential", "restricted"]
region = "eu"

[policy]
degrade_at = 0.8

[policy.specialists.coding]
preferred = "sonnet"
fallback = ["onprem"]
requires = ["coding"]

[[policy.rules]]
data_class = ["confidential", "restricted"]
regions = ["eu"]

[budgets.project.acme]
usd = 5.0
period = "month"

[budgets.run]
tokens = 100000

[tracing]
endpoint = "owned by another area: ignored here"
"""


def write(tmp_path, text: str):
    p = tmp_path / 'proctor.toml'
    p.write_text(textwrap.dedent(text))
    return p


def test_a_good_file_loads_lazily_with_prices_tiers_and_budgets(tmp_path, monkeypatch):
    monkeypatch.delenv('OPENAI_API_KEY', raising=False)
    cfg = load_config(write(tmp_path, GOOD))
    reg = cfg.registry
    assert reg.ids() == ['mini', 'sonnet', 'onprem']
    mini = reg.get('mini')
    assert (mini.version, mini.tier, mini.expected_latency_ms, mini.cost(1_000_000, 1_000_000)) == (
        '2024-07-18',
        'low',
        500,
        0.75,
    )
    assert reg.get('sonnet').tier == 'medium' and reg.get('sonnet').expected_latency_ms == 2500
    assert cfg.policy.specialists['coding'].fallback == ('onprem',)
    assert cfg.budgets == [
        Budget('project', 'acme', usd=5.0, period='month'),
        Budget('run', '*', tokens=100000, period='run'),
    ]
    # Listing needs no API key: nothing is built until a team uses the model.
    assert [s['id'] for s in reg.summaries()] == ['mini', 'sonnet', 'onprem']


def test_registry_in_code_holds_model_instances_and_refuses_unknown_ids():
    scripted = ScriptedModel(['hi'])
    reg = ModelRegistry({'local': {'model': scripted, 'data_classes': ['internal']}})
    assert reg.model('local') is scripted
    with pytest.raises(UnknownModelError, match=r"unknown model 'gpt-5' \(known: local\)"):
        reg.get('gpt-5')


def test_bind_swaps_the_transport_and_keeps_prices(tmp_path):
    scripted = ScriptedModel(['hi'])
    router = ModelRouter.from_file(write(tmp_path, GOOD), models={'sonnet': scripted})
    assert router.registry.model('sonnet') is scripted
    assert router.registry.get('sonnet').usd_per_m_output == 15.0
    with pytest.raises(UnknownModelError, match="unknown model 'opus'.*cannot bind it"):
        ModelRouter.from_file(write(tmp_path, GOOD), models={'opus': scripted})


@pytest.mark.parametrize(
    'text,key,reason',
    [
        ('[models.a]\ndata_classes = ["public"]\nmodel = openai:x\n', None, r'invalid TOML: .*at line 3, column'),
        (
            '[models.a]\nmodel = "openai:x"\ndata_classes = ["public"]\ncolour = "red"\n',
            'models.a.colour',
            'unknown key',
        ),
        (
            '[models.a]\nmodel = "openai:x"\ndata_classes = ["public"]\nusd_per_m_input = -1\n',
            'models.a.usd_per_m_input',
            'greater than or equal to 0',
        ),
        ('[models.a]\nmodel = "openai:x"\n', 'models.a.data_classes', 'Field required'),
        ('[models.a]\nmodel = "openai:x"\ndata_classes = ["secret"]\n', 'models.a.data_classes[0]', "'public'"),
        ('[models.a]\nmodel = "nosuch:x"\ndata_classes = ["public"]\n', 'models.a.model', "unknown provider 'nosuch'"),
        ('[models.a]\nmodel = "local:llama9"\ndata_classes = ["public"]\n', 'models.a.model', 'unknown embedded model'),
        ('[models.a]\nmodel = "openai-compatible:llama"\ndata_classes = ["public"]\n', 'models.a', 'needs base_url'),
        (
            '[models.a]\nmodel = "openai:x"\ndata_classes = ["public"]\n[policy.specialists.coding]\npreferred = "b"\n',
            'policy.specialists.coding.preferred',
            r"unknown model 'b' \(known: a\)",
        ),
        (
            '[models.a]\nmodel = "openai:x"\ndata_classes = ["public"]\n[policy.specialists.coding]\nfavourite = "a"\n',
            'policy.specialists.coding.favourite',
            'unknown key',
        ),
        (
            '[models.a]\nmodel = "openai:x"\ndata_classes = ["public"]\n[[policy.rules]]\ndata_class = "confidential"\n',
            'policy.rules[0]',
            r"no model is approved for data class 'confidential' under this rule \(a: not approved",
        ),
        (
            '[models.a]\nmodel = "openai:x"\ndata_classes = ["public", "confidential"]\nregion = "us"\n'
            '[[policy.rules]]\ndata_class = "confidential"\nregions = ["eu"]\n',
            'policy.rules[0]',
            r'a: region us not in',
        ),
        (
            '[models.a]\nmodel = "openai:x"\ndata_classes = ["public"]\n[policy.specialists.coding]\npreferred = "a"\n'
            'data_classes = ["restricted"]\n',
            'policy.specialists.coding',
            r"no approved model for data class 'restricted' \(a: not approved for restricted",
        ),
        (
            '[models.a]\nmodel = "openai:x"\ndata_classes = ["public"]\n[budgets.model.b]\nusd = 1\n',
            'budgets.model.b',
            "unknown model 'b'",
        ),
        (
            '[models.a]\nmodel = "openai:x"\ndata_classes = ["public"]\n[budgets.project.p]\nperiod = "day"\n',
            'budgets.project.p',
            'needs usd',
        ),
        (
            '[models.a]\nmodel = "openai:x"\ndata_classes = ["public"]\n[budgets.project.p]\nusd = -2\n',
            'budgets.project.p.usd',
            'greater than or equal to 0',
        ),
        ('[model.a]\nmodel = "openai:x"\n', 'model', r'did you mean \[models\]'),
        ('[policy]\ndegrade_at = 0.5\n', 'models', r'no \[models.<id>\] tables'),
    ],
    ids=[
        'toml',
        'unknown-key',
        'negative-price',
        'no-data-classes',
        'bad-data-class',
        'provider',
        'local',
        'base-url',
        'unknown-preferred',
        'policy-key',
        'rule-no-model',
        'rule-region',
        'specialist-class',
        'budget-model',
        'budget-empty',
        'budget-negative',
        'section-typo',
        'no-models',
    ],
)
def test_bad_files_name_file_key_and_reason(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        ModelRouter.from_file(path)
    err = info.value
    assert err.file == str(path)
    assert err.key == key
    assert str(err).startswith(f'{path}: {key + ": " if key else ""}')
    assert len(str(err).splitlines()) == 1
    assert re.search(reason, str(err)), str(err)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r'proctor.toml: file not found'):
        load_config(tmp_path / 'proctor.toml')


def test_budgets_in_code_are_validated():
    with pytest.raises(ConfigError, match='budgets.team.a: usd must be a non-negative number'):
        Budget('team', 'a', usd=-1)
    with pytest.raises(ConfigError, match='needs usd or tokens'):
        Budget('project', 'p')
    assert Budget('run', usd=1).period == 'run'


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    from proctor.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_models_list_cli(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, GOOD)
    code, out, err = run_cli(capsys, 'models', 'list', '--config', str(path), '--json')
    assert code == 0, err
    doc = json.loads(out)
    assert [(m['id'], m['cost_tier'], m['data_classes']) for m in doc['models']] == [
        ('mini', 'low', ['public', 'internal']),
        ('sonnet', 'medium', ['public', 'internal']),
        ('onprem', 'low', ['public', 'internal', 'confidential', 'restricted']),
    ]
    monkeypatch.chdir(tmp_path)  # ./proctor.toml by default
    code, out, err = run_cli(capsys, 'models', 'list')
    assert code == 0, err
    assert 'openai-compatible:llama3.1' in out and 'confidential' in out

    (tmp_path / 'bad.toml').write_text(
        '[models.a]\nmodel = "openai:x"\ndata_classes = ["public"]\nusd_per_m_output = -3\n'
    )
    code, out, err = run_cli(capsys, 'models', 'list', '--config', 'bad.toml')
    assert (code, err.strip()) == (
        1,
        'error: bad.toml: models.a.usd_per_m_output: Input should be greater than or equal to 0',
    )
    (tmp_path / 'empty').mkdir()
    monkeypatch.chdir(tmp_path / 'empty')
    code, out, err = run_cli(capsys, 'models', 'list')
    assert (code, err.strip()) == (1, 'error: proctor.toml: file not found (pass --config PATH or create it)')


def test_bad_config_from_the_real_command_is_one_line(tmp_path):
    (tmp_path / 'proctor.toml').write_text('[models.a]\nmodel = "openai:x"\ndata_classes = ["public"]\nspeed = 3\n')
    out = subprocess.run(
        [sys.executable, '-m', 'proctor', 'models', 'list'], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 1
    assert out.stderr.strip() == 'error: proctor.toml: models.a.speed: unknown key'
