"""Placement (vpd.host.placement): each rule on its own, then properties over random facts."""
from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from vpd.host.placement import Candidate, Guest, Rules, place, sees_disks


def host(name: str, free: int = 4096, cpus: int = 4, **kw) -> Candidate:
    return Candidate(name=name, memory_free_mib=free, cpus=cpus, arch="x86_64",
                     storage=kw.pop("storage", frozenset({"/shared"})), **kw)


def guest(name: str, memory: int = 512, vcpus: int = 1, source: str = "hosta", **kw) -> Guest:
    return Guest(name=name, source=source, memory_mib=memory, vcpus=vcpus, arch="x86_64",
                 disks=kw.pop("disks", (f"/shared/{name}.qcow2",)), **kw)


# --- the rules, one by one ---------------------------------------------------------------

def test_never_on_its_own_host():
    plan = place([host("hosta")], [guest("web")])
    assert plan.host_of("web") is None
    assert plan.placements[0].reason == "no other host"


def test_maintenance_host_is_refused_with_the_reason():
    plan = place([host("hosta"), host("hostb", maintenance=True), host("hostc")], [guest("web")])
    assert plan.host_of("web") == "hostc"
    assert plan.placements[0].refusals["hostb"] == "in maintenance"
    plan = place([host("hosta"), host("hostb", maintenance=True)], [guest("web")])
    assert plan.refused[0].reason == "no host can take it (hostb: in maintenance)"


def test_unreachable_host_takes_nothing():
    plan = place([host("hostb", reachable=False, error="connection refused")], [guest("web")])
    assert plan.placements[0].refusals["hostb"] == "unreachable (connection refused)"


def test_arch_and_cpu_model():
    arm = Candidate("hostb", 4096, 4, arch="aarch64", storage=frozenset({"/shared"}))
    assert "arch aarch64" in place([arm], [guest("web")]).placements[0].refusals["hostb"]
    epyc = host("hostb", cpu_model="EPYC")
    assert place([epyc], [guest("web", cpu_model="EPYC")]).host_of("web") == "hostb"
    assert place([epyc], [guest("web")]).host_of("web") == "hostb"  # a portable CPU goes anywhere
    refused = place([host("hostb", cpu_model="Skylake")], [guest("web", cpu_model="EPYC")])
    assert refused.placements[0].refusals["hostb"] == "CPU model Skylake, the guest needs EPYC"


def test_a_host_without_the_guests_storage_is_refused():
    plan = place([host("hostb", storage=frozenset({"/other"})), host("hostc", storage=frozenset({"/shared"}))],
                 [guest("web")])
    assert plan.host_of("web") == "hostc"
    assert plan.placements[0].refusals["hostb"] == "no storage for /shared"
    # a pool's directory covers its subdirectories; a diskless guest needs no storage
    assert sees_disks(frozenset({"/srv"}), ["/srv/vms/a.qcow2"]) == []
    assert sees_disks(frozenset({"/srv/vm"}), ["/srv/vms/a.qcow2"]) == ["/srv/vms"]
    assert place([host("hostb", storage=frozenset())], [guest("web", disks=())]).host_of("web") == "hostb"


def test_memory_counts_the_overhead_and_what_the_plan_already_put_there():
    # 1100 MiB free: one 512 MiB guest with 64 MiB overhead fits, a second does not.
    plan = place([host("hostb", free=1100)], [guest("a"), guest("b")])
    assert [p.host for p in plan.placements] == ["hostb", None]
    assert plan.placements[1].refusals["hostb"] == "524 MiB free, the guest needs 512 + 64 MiB"
    reserved = place([host("hostb", free=1100)], [guest("a")], Rules(reserve_mib=600))
    assert reserved.refused and "(+600 reserved)" in reserved.refused[0].reason


def test_vcpu_overcommit_limit():
    # 2 CPUs x 4.0 = 8 vCPUs; 5 already committed: a 2-vCPU guest fits, then a 2-vCPU one does not.
    plan = place([host("hostb", cpus=2, vcpus_committed=5)], [guest("a", vcpus=2), guest("b", vcpus=2)])
    assert [p.host for p in plan.placements] == ["hostb", None]
    assert plan.placements[1].refusals["hostb"] == "9 vCPUs would exceed 8 (2 CPUs x 4)"
    assert place([host("hostb", cpus=2)], [guest("a", vcpus=3)], Rules(vcpu_ratio=1.0)).refused


def test_anti_affinity_spreads_a_group_even_against_free_memory():
    hosts = [host("hostb", free=8192), host("hostc", free=2048), host("hostd", free=2048, groups=("db",))]
    plan = place(hosts, [guest("web1", anti_affinity="web"), guest("web2", anti_affinity="web")])
    assert {plan.host_of("web1"), plan.host_of("web2")} == {"hostb", "hostc"}
    # a group member already running on a host counts too
    plan = place(hosts, [guest("db2", anti_affinity="db")])
    assert plan.host_of("db2") == "hostb"
    plan = place([host("hostb", groups=("db",))], [guest("db2", anti_affinity="db")])
    assert plan.host_of("db2") == "hostb" and "shares anti-affinity group db" in plan.placements[0].reason


def test_strict_anti_affinity_refuses_instead_of_sharing():
    plan = place([host("hostb", groups=("db",))], [guest("db2", anti_affinity="db")],
                 Rules(strict_anti_affinity=True))
    assert plan.refused[0].refusals["hostb"] == "already has a guest of anti-affinity group db"


def test_most_free_memory_wins_then_the_name():
    plan = place([host("hostc", free=4096), host("hostb", free=2048)], [guest("web")])
    assert plan.host_of("web") == "hostc"
    plan = place([host("hostc"), host("hostb")], [guest("web")])
    assert plan.host_of("web") == "hostb"


def test_plan_is_in_name_order_and_serialises():
    plan = place([host("hostb")], [guest("z"), guest("a")])
    assert [p.vm for p in plan.placements] == ["a", "z"]
    assert plan.to_dict()["placements"][0]["host"] == "hostb"


# --- properties --------------------------------------------------------------------------

HOSTS = ["hosta", "hostb", "hostc", "hostd"]
GROUPS = [None, None, "web", "db"]

candidates = st.builds(
    lambda name, free, cpus, committed, maintenance, shared: Candidate(
        name=name, memory_free_mib=free, cpus=cpus, vcpus_committed=committed, arch="x86_64",
        maintenance=maintenance, storage=frozenset({"/shared"} if shared else {"/local"})),
    st.sampled_from(HOSTS), st.integers(0, 8192), st.integers(1, 8), st.integers(0, 16), st.booleans(),
    st.booleans())
host_lists = st.lists(candidates, max_size=4, unique_by=lambda h: h.name)
guest_lists = st.lists(
    st.builds(lambda i, mem, vcpus, group, shared: guest(f"vm{i}", memory=mem, vcpus=vcpus, anti_affinity=group,
                                                         disks=(f"{'/shared' if shared else '/local'}/vm{i}.img",)),
              st.integers(0, 40), st.integers(64, 4096), st.integers(1, 4), st.sampled_from(GROUPS),
              st.booleans()),
    max_size=12, unique_by=lambda g: g.name)
rules = st.builds(Rules, overhead_mib=st.integers(0, 256), reserve_mib=st.integers(0, 512),
                  vcpu_ratio=st.sampled_from([1.0, 2.0, 4.0]), strict_anti_affinity=st.booleans())


@given(host_lists, guest_lists, rules)
def test_never_overcommits_memory_or_vcpus(hosts, guests, r):
    plan = place(hosts, guests, r)
    by_name = {g.name: g for g in guests}
    for h in hosts:
        placed = [by_name[p.vm] for p in plan.moves if p.host == h.name]
        if placed:
            assert sum(g.memory_mib + r.overhead_mib for g in placed) <= h.memory_free_mib - r.reserve_mib
            assert h.vcpus_committed + sum(g.vcpus for g in placed) <= h.cpus * r.vcpu_ratio


@given(host_lists, guest_lists, rules)
def test_every_guest_once_never_home_nor_in_maintenance_nor_without_its_storage(hosts, guests, r):
    plan = place(hosts, guests, r)
    assert sorted(p.vm for p in plan.placements) == sorted(g.name for g in guests)
    by_host = {h.name: h for h in hosts}
    for p in plan.moves:
        assert p.host != p.source
        assert not by_host[p.host].maintenance
        assert not sees_disks(by_host[p.host].storage, [d for g in guests if g.name == p.vm for d in g.disks])
    for p in plan.refused:
        assert set(p.refusals) == set(by_host)  # every host said why not


@given(host_lists, guest_lists, rules, st.randoms())
def test_deterministic_whatever_the_order_of_the_facts(hosts, guests, r, rnd):
    first = place(hosts, guests, r)
    shuffled_hosts, shuffled_guests = hosts[:], guests[:]
    rnd.shuffle(shuffled_hosts)
    rnd.shuffle(shuffled_guests)
    assert place(shuffled_hosts, shuffled_guests, r) == first
    assert place(hosts, guests, r) == first


@given(st.integers(2, 6), st.lists(st.sampled_from(["web", "db", None]), max_size=10), st.randoms())
def test_anti_affinity_never_shares_a_host_when_avoidable(n_hosts, groups, rnd: random.Random):
    """Hosts with room for everything: a group of k <= (hosts - 1) members lands on k hosts."""
    hosts = [host(f"host{i}", free=65536, cpus=64) for i in range(n_hosts)]
    guests = [guest(f"vm{i}", memory=rnd.choice([256, 512, 1024]), source="host0", anti_affinity=g)
              for i, g in enumerate(groups)]
    plan = place(hosts, guests)
    assert not plan.refused
    together = Counter((g.anti_affinity, plan.host_of(g.name)) for g in guests if g.anti_affinity)
    for group, size in Counter(g.anti_affinity for g in guests if g.anti_affinity).items():
        if size <= n_hosts - 1:
            assert all(count == 1 for (grp, _), count in together.items() if grp == group), plan
        else:  # as even as it can be
            counts = [count for (grp, _), count in together.items() if grp == group]
            assert max(counts) - min(counts) <= 1 and len(counts) == n_hosts - 1
