"""The k8s-lab stack configuration: read once, validated once, handed out as frozen objects.

Every key lives in the ``k8s-lab`` namespace of the stack file (``Pulumi.<stack>.yaml``). The
layers, each in its own module:

- :mod:`~components.config.defaults`: the values the program pins and the tools' limits;
- :mod:`~components.config.schema`: the typed shape of each key (pydantic, unknown keys rejected);
- :mod:`~components.config.checks` and :mod:`~components.config.metallb_checks`: the lab as a
  whole, with the IP math of :mod:`components.network`; :mod:`~components.config.locations` and
  :mod:`~components.config.memory` for local files and memory estimates;
- :mod:`~components.config.parsing`: raw values to a :class:`LabConfig`, every problem reported
  at once, each naming its key path the way ``pulumi config set --path`` spells it;
- :mod:`~components.config.neighbours`: what the stack would clash with in the project's other
  stack files (warnings);
- :mod:`~components.config.stack`: reading the running stack (:func:`load`).

The program stops before registering a single resource. Components never read configuration;
``__main__.py`` calls :func:`load` and passes the pieces on.
"""

from components.config.defaults import GATEWAY_API_VERSION, NAMESPACE, version_tuple
from components.config.checks import check_lab
from components.config.locations import is_url, local_path
from components.config.memory import app_memory_mb, memory_warnings
from components.config.parsing import parse
from components.config.problems import ConfigError, ConfigReported, Problem
from components.config.schema import (
    AppOptions,
    ArgoCDOptions,
    ClusterConfig,
    DemoOptions,
    DNSConfig,
    GrafanaOptions,
    IngressConfig,
    KubernetesConfig,
    L2AdvertisementConfig,
    LabConfig,
    MetalLBConfig,
    NetworkConfig,
    NodeConfig,
    OfflineConfig,
    OnlineBoutiqueOptions,
    PoolConfig,
    SelfCheckConfig,
    TLSConfig,
    VagrantConfig,
    app_hostname,
    control_plane_and_workers,
    reservation_name,
)
from components.config.stack import PROBLEMS_EXIT_CODE, load, raw_from_cli_json, read_stack_config
