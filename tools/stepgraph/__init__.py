"""The lab's bring-up as a graph of steps: what waits for what, and the longest chain of waits.

Pure: it reads any record of registered resources shaped like :class:`tools.mocks.Run`
(``resources`` with ``urn, type, name, parent, custom, dependencies, provider, inputs``) and,
for the inherent chain, a ``LabConfig``-shaped object. Nothing here imports Pulumi.

Terms
-----
step
    A resource that does work during ``pulumi up``: a custom resource (a command, a Kubernetes
    object) or a provider-side component such as ``kubernetes:yaml/v2:ConfigFile`` or
    ``kubernetes:helm.sh/v4:Chart`` (one registration that applies and awaits many objects).
    The program's own components (``k8s-lab:*``) and providers do no work of their own.
waits for
    What the Python SDK and the engine do: a resource's registration is sent only once
    (1) each dependency, explicit or through an input, is done, a dependency on one of the
    program's components meaning each of its members (the SDK expands it so);
    (2) its provider is done (the provider reference carries the provider's id);
    (3) its parent has registered, and a component registers only once its own dependencies
    are done, so children inherit their component's ``depends_on``.
    The engine answers a registration only when the step is done, which makes these waits.
phase
    What a step is for, one of :data:`PHASES`: from its Kubernetes kind (an ``IPAddressPool``,
    an ``Ingress``...), else from the type of the nearest of the program's components above it
    (``k8s-lab:vm:VirtualMachine`` is ``vm``, an app component ``apps``), the kubeadm cluster's
    command steps from their role there (:mod:`components.kubeadm_steps`). Only steps outside
    the program's components, and a recorded event log's, are read by the words in their names.
    Steps that match no rule are ``unclassified`` and listed, never guessed.
stage
    One phase of one node, pool, advertisement or app (``("join", "k8s-w1")``). Steps of one
    stage that wait for each other are one unit of work.
chain
    A path of waits between steps, counted in steps (each step 1) and in stages (a run of
    consecutive steps of one stage counts once; reading the kubeconfig counts 0: it takes a
    second next to minutes of VM boots, image pulls and rollouts).
inherent chain
    The longest chain of stages that the configuration and the tools impose
    (:func:`inherent_requirements`). A program whose longest chain in stages is longer makes
    some work wait that could overlap; :func:`needless_waits` names those waits.

One module a job: :mod:`~tools.stepgraph.phases` (what a step is for),
:mod:`~tools.stepgraph.graph` (the steps of a run and their waits),
:mod:`~tools.stepgraph.inherent` (the configuration's own ordering),
:mod:`~tools.stepgraph.chain` (longest chains and needless waits) and
:mod:`~tools.stepgraph.render` (Mermaid and Graphviz pictures).
"""

from tools.stepgraph.chain import ChainReport, format_stages, longest_chain, needless_waits, report, stage_length, stages_along
from tools.stepgraph.graph import Component, Registrations, Step, StepGraph, build
from tools.stepgraph.inherent import contract, inherent_chain, inherent_requirements
from tools.stepgraph.phases import APP_TOKENS, CHEAP_PHASES, LOCAL_PACKAGES, PER_NODE_PHASES, PHASES, PROVIDER_PREFIX
from tools.stepgraph.phases import APP_TYPES, KUBEADM_TYPE
from tools.stepgraph.phases import STACK_TYPE, UNCLASSIFIED, Names, Stage, classify, instance_of, stage_weight
from tools.stepgraph.render import to_dot, to_mermaid

__all__ = [
    "APP_TOKENS", "APP_TYPES", "KUBEADM_TYPE", "CHEAP_PHASES", "LOCAL_PACKAGES", "PER_NODE_PHASES", "PHASES", "PROVIDER_PREFIX",
    "STACK_TYPE", "UNCLASSIFIED", "ChainReport", "Component", "Names", "Registrations", "Stage",
    "Step", "StepGraph", "build", "classify", "contract", "format_stages", "inherent_chain",
    "inherent_requirements", "instance_of", "longest_chain", "needless_waits", "report", "stage_length",
    "stage_weight", "stages_along", "to_dot", "to_mermaid",
]  # fmt: skip
