"""MetalLB: the install, the pools and the L2 advertisements, checked on what the program registers."""

from __future__ import annotations

import copy
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components import config as lab_config
from components import metallb as mlb
from components import network as net
from harness import DELETE, reference_docs, run_program
from labruns import run_lab

POOL = "kubernetes:metallb.io/v1beta1:IPAddressPool"
L2 = "kubernetes:metallb.io/v1beta1:L2Advertisement"
CONFIGFILE = "kubernetes:yaml/v2:ConfigFile"
VERSIONS = ["0.14.9", "0.15.3", "0.16.1"]


def run(**overrides):
    """The seed's MetalLB on an existing cluster whose NIC is eth1 (cached per overrides)."""
    return run_lab(**overrides)


def specs(run_, type_):
    return {r.input("metadata.name"): r.input("spec") for r in run_.of_type(type_)}


# -- the install --


def test_installs_the_pinned_upstream_manifest_through_the_lab_provider():
    r = run()
    install = r.one(CONFIGFILE, "lab-metallb-install")
    assert install.inputs["file"] == (
        "https://raw.githubusercontent.com/metallb/metallb/v0.14.9/config/manifests/metallb-native.yaml"
    )
    provider = r.one("pulumi:providers:kubernetes")
    assert install.provider.startswith(provider.urn)
    assert install.options["transforms"] == 1
    assert install.parent == r.one("k8s-lab:metallb:MetalLB").urn


def test_version_and_offline_manifest_come_from_config(tmp_path):
    assert run(**{"metallb.version": "0.16.1"}).one(CONFIGFILE, "lab-metallb-install").inputs["file"].endswith(
        "/v0.16.1/config/manifests/metallb-native.yaml"
    )
    local = tmp_path / "metallb-native.yaml"
    local.write_text("# an offline copy\n")
    assert run(**{"metallb.manifest": str(local)}).one(CONFIGFILE, "lab-metallb-install").inputs["file"] == str(local)


# -- pools --


def test_pinned_ingress_ip_is_carved_into_a_reservation_pool():
    pools = specs(run(), POOL)
    assert pools == {
        "lab-pool": {"addresses": ["192.168.56.201-192.168.56.250"], "autoAssign": True},
        "lab-pool-reserved-ingress": {"addresses": ["192.168.56.200/32"], "autoAssign": False},
    }


def test_without_a_pinned_ip_the_pools_are_exactly_the_config():
    pools = specs(run(**{"ingress.ip": DELETE}), POOL)
    assert pools == {"lab-pool": {"addresses": ["192.168.56.200-192.168.56.250"], "autoAssign": True}}


def test_every_pool_and_advertisement_waits_for_the_install():
    r = run(**{"metallb.pools[1]": {"name": "extra", "addresses": ["192.168.56.100/30"], "auto_assign": False}})
    install = r.one(CONFIGFILE, "lab-metallb-install")
    crs = r.of_type(POOL) + r.of_type(L2)
    assert len(crs) == 4
    for cr in crs:
        assert r.waits_for(cr, install), f"{cr.name} does not wait for the MetalLB install"
        assert cr.input("metadata.namespace") == "metallb-system"
        assert cr.provider == r.one(CONFIGFILE, "lab-metallb-install").provider


# -- moving a pinned IP: every address leaves one pool before it enters another --
#
# MetalLB's webhook refuses any moment where two pools overlap. The engine runs these options in
# the control-plane tier (test_controlplane.py::test_pinned_ips_change_on_a_running_lab); here
# they are pinned down without it.

COMMAND = "command:local:Command"
DNS_ON = {"dns.enabled": True, "dns.ip": "192.168.56.250"}


def test_every_key_that_can_pin_an_ip_has_a_pinned_address_replaced_delete_first():
    # dns.ip has one with the DNS server off too: turning it off must replace it (see below).
    r = run()
    pins = {p.name: p for p in r.of_type(COMMAND) if p.name.startswith("lab-metallb-pin-")}
    assert set(pins) == {"lab-metallb-pin-ingress-ip", "lab-metallb-pin-dns-ip"}
    # The IP is its triggers: another one (or none) replaces it; it runs nothing.
    assert pins["lab-metallb-pin-ingress-ip"].inputs["triggers"] == ["ingress.ip", "192.168.56.200"]
    assert pins["lab-metallb-pin-dns-ip"].inputs["triggers"] == ["dns.ip", ""]
    assert not any(p.inputs.get("create") or p.inputs.get("delete") for p in pins.values())
    assert all(p.options["delete_before_replace"] for p in pins.values())
    assert run(**DNS_ON).named("lab-metallb-pin-dns-ip").inputs["triggers"] == ["dns.ip", "192.168.56.250"]


def test_reservations_are_replaced_with_their_key_and_carved_pools_never_are():
    r = run(**DNS_ON)
    pin = {key: r.named(f"lab-metallb-pin-{key}-ip") for key in ("ingress", "dns")}
    carved = r.named("lab-metallb-pool-lab-pool")
    for key in ("ingress", "dns"):
        reservation = r.named(f"lab-metallb-pool-lab-pool-reserved-{key}")
        # Its spec depends on its own key's pinned address (no other), and a new spec replaces it,
        # delete-first: so replacing the pinned address deletes the reservation at that step.
        assert reservation.property_dependencies["spec"] == {pin[key].urn}
        assert reservation.options["replace_on_changes"] == ["spec"]
        assert reservation.options["delete_before_replace"] is True
    # The carved pool is only ordered after them: it is updated in place, never replaced along.
    assert not any(pin[key].urn in deps for key in pin for deps in carved.property_dependencies.values())
    assert carved.options["delete_before_replace"] is False and carved.options["replace_on_changes"] == []


def test_carved_pools_wait_for_every_pinned_address_and_reservations_for_every_carved_pool():
    r = run(**{**DNS_ON, "metallb.pools[1]": {"name": "extra", "addresses": ["192.168.56.100/30"]}})
    pins = [p for p in r.of_type(COMMAND) if p.name.startswith("lab-metallb-pin-")]
    carved = [r.named("lab-metallb-pool-lab-pool"), r.named("lab-metallb-pool-extra")]
    reservations = [r.named("lab-metallb-pool-lab-pool-reserved-ingress"), r.named("lab-metallb-pool-lab-pool-reserved-dns")]
    for pool in carved:
        assert all(pool.depends_on(pin) for pin in pins), pool.name
    for reservation in reservations:
        assert all(reservation.depends_on(pool) for pool in carved), reservation.name
    # One after another, in case they replace the one shared reservation of an older lab.
    assert reservations[1].depends_on(reservations[0])


def test_the_first_reservation_of_a_pool_takes_over_the_pools_shared_one():
    r = run(**DNS_ON)
    assert r.named("lab-metallb-pool-lab-pool-reserved-ingress").options["aliases"] == [
        {"spec": {"name": "lab-metallb-pool-lab-pool-reserved", "parentUrn": ""}}
    ]
    assert r.named("lab-metallb-pool-lab-pool-reserved-dns").options["aliases"] == []
    # A configured pool of that name is that pool, not an alias.
    own = run(**{"metallb.pools[1]": {"name": "lab-pool-reserved", "addresses": ["192.168.56.100/30"]}})
    assert own.named("lab-metallb-pool-lab-pool-reserved-ingress").options["aliases"] == []


# -- L2 advertisements --


def test_advertisement_announces_the_pool_and_its_reservation_on_the_host_only_nic_only():
    assert specs(run(), L2) == {"lab-l2": {"ipAddressPools": ["lab-pool", "lab-pool-reserved-ingress"], "interfaces": ["eth1"]}}


def test_advertisement_interfaces_from_config_win():
    spec = specs(run(**{"metallb.l2_advertisements[0].interfaces": ["enp0s8", "eth1"]}), L2)["lab-l2"]
    assert spec["interfaces"] == ["enp0s8", "eth1"]


def test_advertisement_without_pools_announces_every_pool():
    spec = specs(run(**{"metallb.l2_advertisements[0].pools": []}), L2)["lab-l2"]
    assert "ipAddressPools" not in spec and spec["interfaces"] == ["eth1"]


def test_unknown_nic_on_an_existing_cluster_announces_everywhere_with_a_warning():
    r = run(**{"network.interface": DELETE})
    assert "interfaces" not in specs(r, L2)["lab-l2"]
    assert any("announces on every interface" in w for w in r.warnings)


# -- annotations --


@pytest.mark.parametrize(
    "version,annotation",
    [("0.13.12", "metallb.universe.tf/loadBalancerIPs"), ("0.14.8", "metallb.universe.tf/loadBalancerIPs"),
     ("0.14.9", "metallb.io/loadBalancerIPs"), ("0.16.1", "metallb.io/loadBalancerIPs")],
)
def test_pin_annotation_follows_the_version(version, annotation):
    assert mlb.pin_annotation(version) == annotation


def test_reservation_name_cannot_collide_with_a_user_pool():
    with pytest.raises(lab_config.ConfigError) as err:
        run(**{"metallb.pools[1]": {"name": "lab-pool-reserved-ingress", "addresses": ["192.168.56.100/30"]}})
    assert "metallb.pools[1].name" in err.value.paths()
    assert "reserves ingress.ip 192.168.56.200 inside lab-pool" in str(err.value)


def test_the_dns_servers_reservation_cannot_collide_with_a_user_pool_either():
    # dns.ip in a second pool is carved into <that pool>-reserved, as ingress.ip is in lab-pool.
    with pytest.raises(lab_config.ConfigError) as err:
        run(
            **{
                "metallb.pools[1]": {"name": "extra", "addresses": ["192.168.56.100/30"]},
                "metallb.pools[2]": {"name": "extra-reserved-dns", "addresses": ["192.168.56.120/30"]},
                "metallb.l2_advertisements[0].pools": ["lab-pool", "extra", "extra-reserved-dns"],
                "dns": {"enabled": True, "ip": "192.168.56.101"},
            }
        )
    assert "metallb.pools[2].name" in err.value.paths()
    assert "dns.ip 192.168.56.101 inside extra" in str(err.value)


def test_a_pool_whose_reservation_name_would_be_too_long_is_refused():
    name = "p" * 240  # a valid object name, but "<name>-reserved-ingress" is 257 characters
    with pytest.raises(lab_config.ConfigError) as err:
        run(**{"metallb.pools[0].name": name, "metallb.l2_advertisements[0].pools": [name]})
    assert "metallb.pools[0].name" in err.value.paths()
    assert "'-reserved-ingress'" in str(err.value) and "shorten it to 236 characters or fewer" in str(err.value)


def test_ipvs_on_an_existing_cluster_warns_about_strict_arp():
    assert any("strictARP" in w for w in run(**{"kubernetes.kube_proxy_mode": "ipvs"}).warnings)


# -- against MetalLB's own CRD schemas --


def _strict(schema):
    """A strict API server rejects unknown fields: forbid them wherever the schema lists properties."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def crd_schema(version: str, kind: str):
    for doc in reference_docs(f"metallb/metallb-native-v{version}.yaml"):
        if doc["kind"] == "CustomResourceDefinition" and doc["spec"]["names"]["kind"] == kind:
            served = next(v for v in doc["spec"]["versions"] if v["name"] == "v1beta1")
            return _strict(served["schema"]["openAPIV3Schema"])
    raise AssertionError(f"{kind} CRD not found in MetalLB {version}")


@pytest.mark.parametrize("version", VERSIONS)
def test_pools_and_advertisements_validate_against_metallb_crds(version):
    import jsonschema

    r = run(**{"metallb.version": version, "metallb.pools[1]": {"name": "extra", "addresses": ["192.168.56.100/30"], "auto_assign": False}})
    for type_, kind in ((POOL, "IPAddressPool"), (L2, "L2Advertisement")):
        schema = crd_schema(version, kind)
        objects = r.of_type(type_)
        assert objects
        for obj in objects:
            body = {k: obj.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}
            assert body["apiVersion"] == "metallb.io/v1beta1" and body["kind"] == kind
            jsonschema.validate(body, schema)


@pytest.mark.parametrize("version", VERSIONS)
def test_strict_schema_catches_a_misspelt_field(version):
    import jsonschema

    schema = crd_schema(version, "IPAddressPool")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": {"addresses": ["192.168.56.200/32"], "autoassign": False}}, schema)


# -- the caBundle transform, on the real manifests --


def test_placeholder_ca_bundle_is_left_to_the_controller():
    docs = reference_docs("metallb/metallb-native-v0.14.9.yaml")
    crd = next(d for d in docs if d["kind"] == "CustomResourceDefinition" and d["metadata"]["name"] == "bgppeers.metallb.io")
    before = copy.deepcopy(crd)
    after = mlb.drop_placeholder_ca_bundle(crd)
    assert "caBundle" not in after["spec"]["conversion"]["webhook"]["clientConfig"]
    assert after["spec"]["conversion"]["webhook"]["clientConfig"]["service"] == before["spec"]["conversion"]["webhook"]["clientConfig"]["service"]
    assert crd == before, "the transform must not mutate its input"
    assert mlb.drop_placeholder_ca_bundle(after) == after
    others = [d for d in docs if d is not crd]
    assert all(mlb.drop_placeholder_ca_bundle(d) == d for d in others)


@pytest.mark.parametrize("version", ["0.15.3", "0.16.1"])
def test_fixed_versions_have_no_placeholder_to_drop(version):
    docs = reference_docs(f"metallb/metallb-native-v{version}.yaml")
    assert all(mlb.drop_placeholder_ca_bundle(d) == d for d in docs)


# -- the readiness transform, on the real manifests --


def _controller(docs):
    return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "controller")


def test_0_16_controller_is_ready_only_once_its_webhook_port_serves():
    docs = reference_docs("metallb/metallb-native-v0.16.1.yaml")
    before = _controller(docs)
    untouched = copy.deepcopy(before)
    assert before["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    after = mlb.edit_install(before)
    probe = after["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["tcpSocket"] == {"port": "webhook-server"} and "httpGet" not in probe
    # The probe's timings stay upstream's.
    upstream = untouched["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert {k: v for k, v in probe.items() if k != "tcpSocket"} == {k: v for k, v in upstream.items() if k != "httpGet"}
    assert before == untouched, "input mutated"
    # The speaker (no webhook) keeps its probe.
    speaker = next(d for d in docs if d["kind"] == "DaemonSet")
    assert mlb.edit_install(speaker) == speaker


@pytest.mark.parametrize("version", ["0.14.9", "0.15.3"])
def test_controllers_that_probe_metrics_keep_their_probe(version):
    # Up to 0.15 the metrics endpoint, the readiness probe's path, opens together with the webhook.
    controller = _controller(reference_docs(f"metallb/metallb-native-v{version}.yaml"))
    assert controller["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/metrics"
    assert mlb.ready_when_webhook_serves(controller) == controller


# -- planning, as a property --


@st.composite
def pool_and_ip(draw):
    start = draw(st.integers(2, 240))
    end = draw(st.integers(start, 254))
    ip = draw(st.integers(start, end))
    return f"10.1.2.{start}-10.1.2.{end}", f"10.1.2.{ip}"


@given(pool_and_ip())
def test_reservation_keeps_every_address_in_exactly_one_pool(case):
    addresses, ip = case
    config = lab_config.MetalLBConfig(pools=[{"name": "p", "addresses": [addresses]}], l2_advertisements=[{"name": "l2", "pools": ["p"]}])
    plan = mlb.plan_pools(config, {"ingress.ip": IPv4Address(ip), "dns.ip": None})
    ranges = [net.parse_range(a) for spec in plan for a in spec.addresses]
    original = net.parse_range(addresses)
    assert net.total_size(ranges) == original.size
    for i, a in enumerate(ranges):
        assert all(not a.overlaps(b) for b in ranges[i + 1 :])
    reserved = [spec for spec in plan if spec.pin]
    assert len(reserved) == 1 and reserved[0].addresses == (f"{ip}/32",) and not reserved[0].auto_assign
    assert (reserved[0].name, reserved[0].pin, reserved[0].carved_from) == ("p-reserved-ingress", "ingress.ip", "p")
    assert all(IPv4Address(ip) not in net.parse_range(a) for spec in plan if not spec.pin for a in spec.addresses)
    advertised = mlb.plan_advertisements(config, plan)[0].pools
    assert set(advertised) == {spec.name for spec in plan}


# -- on the Vagrant lab --


def test_on_the_lab_the_advertisement_uses_the_nic_node_preparation_found():
    r = run_program("lab")
    assert specs(r, L2)["lab-l2"]["interfaces"] == ["eth1"]
    assert r.waits_for(r.one(L2), r.named("lab-k8s-cp-prepare"))


def test_on_the_lab_metallb_installs_only_once_pods_can_get_ips():
    r = run_program("lab")
    install = r.one(CONFIGFILE, "lab-metallb-install")
    assert r.waits_for(install, r.named("lab-cni"))
    assert r.waits_for(install, r.named("lab-init"))
