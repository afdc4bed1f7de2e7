"""proctor: teams of specialised LLM agents under a supervisor, durable, guarded, traced and replayable.

```python
from proctor import Team, Supervisor, research, coding, review

team = Team(Supervisor(model='local:smollm2'), [research('local:smollm2'), coding('local:smollm2')],
            workspace='my-project')
result = await team.run('Add a --verbose flag', project='cli', data_class='internal')
```
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .agents import Review, Specialist, Supervisor, coding, research, review
    from .guardrails import Approval, ApprovalPolicy, ApprovalQueue, ApprovalRule
    from .orchestrator import (
        DATA_CLASSES,
        Budget,
        DelegationResult,
        Ledger,
        ModelInfo,
        ModelRegistry,
        ModelRouter,
        ReplayReport,
        RunDeps,
        Team,
        TeamResult,
        replay,
        replay_sync,
    )
    from .tools import Workspace

from .exceptions import (
    ApprovalRejected,
    BudgetExceeded,
    GuardrailTripped,
    NoRouteError,
    ProctorError,
    ProviderError,
    RunError,
    UnknownModelError,
    UserError,
    WorkspaceError,
)

__version__ = '0.1.0'

__all__ = (
    'DATA_CLASSES',
    'Approval',
    'ApprovalPolicy',
    'ApprovalQueue',
    'ApprovalRule',
    'Budget',
    'Ledger',
    'ModelInfo',
    'ModelRegistry',
    'ModelRouter',
    'ReplayReport',
    'ApprovalRejected',
    'BudgetExceeded',
    'DelegationResult',
    'GuardrailTripped',
    'NoRouteError',
    'ProctorError',
    'ProviderError',
    'Review',
    'RunDeps',
    'RunError',
    'Specialist',
    'Supervisor',
    'Team',
    'TeamResult',
    'UnknownModelError',
    'UserError',
    'Workspace',
    'WorkspaceError',
    '__version__',
    'coding',
    'research',
    'replay',
    'replay_sync',
    'review',
)

#: Public name -> the submodule that defines it; imported on first access (PEP 562) so that
#: `import proctor` stays cheap and each name pulls in only what it needs.
_LAZY = {
    'Review': '.agents',
    'Specialist': '.agents',
    'Supervisor': '.agents',
    'coding': '.agents',
    'research': '.agents',
    'review': '.agents',
    'DATA_CLASSES': '.orchestrator',
    'Budget': '.orchestrator',
    'DelegationResult': '.orchestrator',
    'Ledger': '.orchestrator',
    'ModelInfo': '.orchestrator',
    'ModelRegistry': '.orchestrator',
    'ModelRouter': '.orchestrator',
    'ReplayReport': '.orchestrator',
    'RunDeps': '.orchestrator',
    'Team': '.orchestrator',
    'TeamResult': '.orchestrator',
    'replay': '.orchestrator',
    'replay_sync': '.orchestrator',
    'Approval': '.guardrails',
    'ApprovalPolicy': '.guardrails',
    'ApprovalQueue': '.guardrails',
    'ApprovalRule': '.guardrails',
    'Workspace': '.tools',
}


from ._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
