"""The yardstick for `./lab preview`: one resource per provider the lab uses, wired as the lab is.

One command, and one Kubernetes object through an explicit provider whose kubeconfig is that
command's stdout (unknown at preview, so no cluster is contacted, as in the lab's preview).
"""

import pulumi
import pulumi_kubernetes as k8s
from pulumi_command import local

step = local.Command("one", create="true")
provider = k8s.Provider("one", kubeconfig=step.stdout)
k8s.core.v1.ConfigMap("one", data={"one": "1"}, opts=pulumi.ResourceOptions(provider=provider))
