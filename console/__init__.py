"""The web console for operators and reviewers: approval inbox, runs with their traces, usage.

```python
from proctor.console import Operator, create_app

app = create_app(store, operators=[Operator.with_token('alice', token, roles=['operator'])])
```

Or from the command line: `proctor console` (reads `[operators.*]` from `proctor.toml`).
"""

from ._app import create_app
from ._auth import Operator, hash_token, load_operators

__all__ = ('Operator', 'create_app', 'hash_token', 'load_operators')
