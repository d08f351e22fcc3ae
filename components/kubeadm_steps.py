"""How the kubeadm cluster names its command steps, and what each one is for.

Pure (no Pulumi), so that tools reading a run or an event log learn a step's role from the one
function that names it instead of guessing from words in the name.
"""

from __future__ import annotations

from typing import Optional

# Each role of a command step directly inside the cluster component; per-node roles carry the node.
ROLES = ("box", "prepare", "init", "cni", "join", "kubeconfig", "kubeconfig-file")
PER_NODE_ROLES = frozenset({"prepare", "join"})


def step_name(cluster: str, role: str, node: Optional[str] = None) -> str:
    """``lab`` + ``join`` + ``k8s-w1`` -> ``lab-k8s-w1-join``; ``lab`` + ``init`` -> ``lab-init``."""
    if role not in ROLES:
        raise ValueError(f"unknown kubeadm step role {role!r}; one of {', '.join(ROLES)}")
    if (role in PER_NODE_ROLES) != (node is not None):
        raise ValueError(f"the {role} step {'needs' if node is None else 'takes no'} node name")
    return "-".join((cluster, node, role) if node is not None else (cluster, role))


def step_role(cluster: str, name: str) -> Optional[str]:
    """The role of the step ``name`` of the cluster ``cluster`` (as :func:`step_name` made it), else None."""
    prefix = f"{cluster}-"
    if not cluster or not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    if rest in ROLES and rest not in PER_NODE_ROLES:
        return rest
    for role in PER_NODE_ROLES:
        if rest.endswith(f"-{role}") and len(rest) > len(role) + 1:
            return role
    return None
