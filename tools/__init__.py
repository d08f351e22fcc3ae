"""Tools around the k8s-lab program: its bring-up graph (graph.py, stepgraph/), engine event-log
reports (eventlog.py), the mocks runner (mocks/), a project copy driven by the real Pulumi CLI
(project.py) and a real control plane on loopback (controlplane/).

Nothing here is part of the Pulumi program; ``__main__.py`` and ``components/`` never import it.
"""
