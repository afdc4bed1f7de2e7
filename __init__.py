"""proctor: teams of specialised LLM agents under a supervisor, durable, guarded, traced and replayable.

```python
from proctor import Team, Supervisor, research, coding, review

team = Team(Supervisor(model='local:smollm2'), [research('local:smollm2'), coding('local:smollm2')],
            workspace='my-project')
result = await team.run('Add a --verbose flag', project='cli', data_class='internal')
```
"""

from .agents import Review, Specialist, Supervisor, coding, research, review
from .exceptions import (
    ApprovalRejected,
    BudgetExceeded,
    GuardrailTripped,
    NoRouteError,
    ProctorError,
    RunError,
    UnknownModelError,
    UserError,
    WorkspaceError,
)
from .orchestrator import (
    DATA_CLASSES,
    Budget,
    DelegationResult,
    Ledger,
    ModelInfo,
    ModelRegistry,
    ModelRouter,
    RunDeps,
    Team,
    TeamResult,
)
from .guardrails import Approval, ApprovalPolicy, ApprovalQueue, ApprovalRule
from .tools import Workspace

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
    'ApprovalRejected',
    'BudgetExceeded',
    'DelegationResult',
    'GuardrailTripped',
    'NoRouteError',
    'ProctorError',
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
    'review',
)
