"""Device pools on Ray (docs/scale-out.md): a local cluster of a head and two worker nodes
on loopback, as ``ray start --head`` and ``ray start --address`` make it; one per module.

Fault tests: an actor killed mid-run, an emulator killed during an upload, a hung chip.
The reference is the local backend (itself checked against independent devices in
test_pool.py): a Ray pool must return exactly what it returns.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

# Ray binds its nodes to the machine's address unless told, before it is imported, to stay
# on loopback (its switch for single-machine clusters).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

import lumina_hal  # noqa: E402
from lumina_hal.errors import ConfigurationError, InputError, LinkError  # noqa: E402
from lumina_hal.pool import RayPool, open_pool  # noqa: E402

RNG = np.random.default_rng(5)
W = RNG.uniform(-1, 1, (16, 24))
X = RNG.uniform(-1, 1, (62, 24)).astype(np.float32)


def uris(n: int, extra: str = "") -> list[str]:
    return [f"fpga+sim://?rows=16&cols=24&preset=typical&seed={i + 1}{extra}" for i in range(n)]


def local_results(devices: list[str], w: np.ndarray, calls: int) -> list[np.ndarray]:
    with open_pool(devices) as pool:
        pool.load_weights(w)
        return [pool.matmul(X) for _ in range(calls)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    c = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    nodes = [
        c.add_node(num_cpus=1, resources={"lumina_chip": 4, "board_A": 1}),
        c.add_node(num_cpus=1, resources={"lumina_chip": 4, "board_B": 1}),
    ]
    ray.init(address=c.address, log_to_driver=False)
    c.wait_for_nodes()
    try:
        yield nodes
    finally:
        ray.shutdown()
        c.shutdown()


def test_nodes_are_on_loopback_and_actors_on_the_board_nodes(cluster: list) -> None:
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    resources = [{"board_A": 1}, {"board_B": 1}]
    with open_pool(uris(2), backend="ray", resources=resources) as pool:
        assert isinstance(pool, RayPool) and len(pool.actors) == 2
        placed = ray.get([a.node_id.remote() for a in pool.actors])
        assert placed == [cluster[0].node_id, cluster[1].node_id]
    with pytest.raises(ConfigurationError, match="board_C"):
        open_pool(uris(1), backend="ray", resources={"board_C": 1})
    with pytest.raises(ConfigurationError, match="resource mappings"):
        open_pool(uris(2), backend="ray", resources=[{"board_A": 1}])
    with (
        lumina_hal.open_device(uris(1)[0]) as device,
        pytest.raises(ConfigurationError, match="URIs or factories"),
    ):
        open_pool([device], backend="ray")


def test_ray_pool_equals_the_local_pool_replicated_and_tiled(cluster: list) -> None:
    expected = local_results(uris(3), W, 2)
    with open_pool(uris(3), backend="ray") as pool:
        pool.load_weights(W)
        for e in expected:
            np.testing.assert_array_equal(pool.matmul(X), e)
        with pytest.raises(InputError):  # raised in the actor, arrives as itself
            pool.matmul(X[:, :3])
        big = RNG.uniform(-1, 1, (30, 40))
        pool.load_weights(big)
        assert pool.tiled
        got = [pool.matmul(X[:, :1].repeat(40, axis=1)) for _ in range(2)]
    with open_pool(uris(3)) as local:
        local.load_weights(W)
        local.matmul(X), local.matmul(X)  # the same history of calls
        local.load_weights(big)
        for g in got:
            np.testing.assert_array_equal(g, local.matmul(X[:, :1].repeat(40, axis=1)))


def test_killed_actor_mid_run_changes_no_result_and_loses_no_call(cluster: list) -> None:
    devices = uris(2, "&run_latency_s=0.05")  # 6 calls of one RUN each: >= 0.3 s
    expected = local_results(devices, W, 6)
    with open_pool(devices, backend="ray") as pool:
        pool.load_weights(W)
        before = pool.actor_pids()
        got: list[np.ndarray] = []
        worker = threading.Thread(target=lambda: got.extend(pool.matmul(X) for _ in range(6)))
        worker.start()
        time.sleep(0.1)
        assert worker.is_alive() and len(got) < 6  # the kill lands while the calls run
        ray.kill(pool.actors[1], no_restart=False)
        worker.join(60)
        assert len(got) == 6
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)
        after = pool.actor_pids()
        assert after[0] == before[0] and after[1] != before[1]
        assert pool.telemetry().counters["chip1_call_index"] == 6  # no call lost or repeated


def test_emulator_killed_during_an_upload_is_reprogrammed(cluster: list) -> None:
    # 115200 Bd: the 16 x 24 upload takes ~0.15 s on the wire, long enough to kill it midway.
    devices = uris(2, "&baudrate=115200")
    expected = local_results(uris(2), W, 2)  # timing changes no result
    with open_pool(devices, backend="ray") as pool:
        before = pool.actor_pids()
        loading = threading.Thread(target=pool.load_weights, args=(W,))
        loading.start()
        time.sleep(0.05)
        assert loading.is_alive()  # the kill lands during the upload
        ray.kill(pool.actors[0], no_restart=False)  # the emulator lives in the actor
        loading.join(60)
        assert pool.weights_id is not None
        assert pool.actor_pids()[0] != before[0]  # re-opened and re-programmed
        for e in expected:
            np.testing.assert_array_equal(pool.matmul(X), e)


def test_hung_chip_is_timed_out_reported_and_restarted(cluster: list) -> None:
    devices = [*uris(1), uris(2, "&run_latency_s=30")[1]]
    with open_pool(devices, backend="ray", timeout_s=2.0) as pool:
        pool.load_weights(W)
        pid = pool.actor_pids()[1]
        start = time.monotonic()
        with pytest.raises(LinkError, match="did not answer run within 2 s"):
            pool.matmul(X)
        assert time.monotonic() - start < 10
        assert pool.chips[0].matmul(X).shape == (62, 16)  # the pool is still usable
        assert pool.actor_pids()[1] != pid  # the hung chip's actor was restarted
        start = time.monotonic()
    assert time.monotonic() - start < 10  # closing does not wait on the chip
