"""Run the whole k8s-lab program under Pulumi mocks and record what it registers.

``run_program("lab", overrides={...})`` loads ``Pulumi.yaml``'s config defaults and the stack file
``Pulumi.<stack>.yaml``, applies overrides (``"metallb.pools[0].auto_assign": False`` style paths,
as ``pulumi config set --path`` takes them, or whole keys), runs ``__main__.py`` against a recording
mock monitor, and returns a :class:`Run`: every resource with its type, name, parent, inputs,
dependency edges, options and which inputs were secret; the resolved stack outputs and which are
secret; and the warnings the program logged.

One module a job: :mod:`~tools.mocks.stackconfig` (the config the CLI would hand over),
:mod:`~tools.mocks.monitor` (what the mocks answer, and the recording), :mod:`~tools.mocks.record`
(what a run registered) and :mod:`~tools.mocks.program` (running the program).
"""

from tools.mocks.monitor import MOCK_LOAD_BALANCER_IP, READ_STATE, LabMocks
from tools.mocks.program import run_program
from tools.mocks.record import UNKNOWN, Registered, Run
from tools.mocks.stackconfig import DELETE, PROJECT, ROOT, set_path, stack_config

__all__ = [
    "DELETE",
    "MOCK_LOAD_BALANCER_IP",
    "PROJECT",
    "READ_STATE",
    "ROOT",
    "UNKNOWN",
    "LabMocks",
    "Registered",
    "Run",
    "run_program",
    "set_path",
    "stack_config",
]
