"""``yolov5-dpu replay``: many bags → one output bag each and summary.jsonl, on a real Ray cluster (no mock): each
output equal to the single-bag command's, a killed worker's bag redone, reruns that skip, Ctrl-C that cleans up."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bag_helpers import bag_messages, interrupt_at_frame, write_rgbd_bag, write_ros1_bag

from demo.make_demo_inputs import moving_shapes, write_bag
from yolov5_dpu_ros.cli.main import main
from yolov5_dpu_ros.replay.bag_io import DETECTIONS, DETECTIONS_3D, DIAGNOSTICS, BagError
from yolov5_dpu_ros.replay.bag_set import find_bags
from yolov5_dpu_ros.replay.ledger import SUMMARY, Ledger, RunKey, input_fingerprint, is_complete

pytestmark = pytest.mark.needs("rosbags", "onnxruntime")

GOOD, CORRUPT = 18, 2


def detections(bag: Path, msgtype: str = DETECTIONS) -> list:
    """Every array of a bag as plain values: topic, bag time, header, and each detection's fields."""
    out = []
    for topic, t, msg in bag_messages(bag, msgtype):
        if msgtype == DIAGNOSTICS:
            out.append((topic, t, msg.header.stamp.sec, msg.header.stamp.nanosec,
                        [kv.key for kv in msg.status[0].values]))  # the values are measured times
            continue
        out.append((topic, t, msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id,
                    [(d.results[0].hypothesis.class_id, round(d.results[0].hypothesis.score, 6), d.id,
                      repr(d.bbox)) for d in msg.detections]))
    return out


def same_output(a: Path, b: Path) -> bool:
    return all(detections(a, m) == detections(b, m) for m in (DETECTIONS, DETECTIONS_3D, DIAGNOSTICS))


def summary(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / SUMMARY).read_text().splitlines()]


def partials(run: Path) -> list[Path]:
    return [p for p in run.rglob(".*.partial")]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Path:
    """20 bags in two sites, nested: 17 rosbag2 (12 frames each), a ROS 1 bag, a corrupt rosbag2, a corrupt .bag."""
    root = tmp_path_factory.mktemp("fleet")
    for i in range(GOOD - 1):
        write_bag(root / ("site_a" if i % 2 else "site_b/day1") / f"run{i:02d}", list(moving_shapes(i, 12)))
    write_ros1_bag(root / "site_b" / "old.bag", list(moving_shapes(99, 12)))
    (root / "site_a" / "broken").mkdir()
    (root / "site_a" / "broken" / "metadata.yaml").write_text("rosbag2_bagfile_information: [")
    (root / "site_b" / "truncated.bag").write_bytes(b"#ROSBAG V2.0\n garbage")
    return root


@pytest.fixture(scope="module")
def singles(fleet, tmp_path_factory) -> dict[str, Path]:
    """Each good bag through today's single-bag command: the reference every fleet output must equal."""
    out = tmp_path_factory.mktemp("singles")
    refs = {}
    for bag in find_bags([str(fleet)]):
        if bag.path.name in ("broken", "truncated.bag"):
            continue
        refs[str(bag.rel)] = out / str(bag.rel).replace("/", "_")
        assert main(["bag", str(bag.path), "--out", str(refs[str(bag.rel)]), "--no-progress"]) == 0
    assert len(refs) == GOOD
    return refs


def test_bags_are_found_in_folders_globs_and_list_files_with_their_relative_paths(fleet, tmp_path):
    rels = sorted(str(b.rel) for b in find_bags([str(fleet)]))
    assert len(rels) == GOOD + CORRUPT and "site_b/old" in rels and "site_b/day1/run00" in rels
    assert "site_b/truncated" in rels and "site_a/broken" in rels  # found here, refused when read
    by_glob = find_bags([str(fleet / "site_*" / "run0*")])
    assert sorted(str(b.rel) for b in by_glob) == ["site_a/run01", "site_a/run03", "site_a/run05", "site_a/run07",
                                                  "site_a/run09"]
    listing = tmp_path / "bags.txt"
    listing.write_text(f"# tonight\n{fleet / 'site_b' / 'old.bag'}\n\n{fleet / 'site_a'}  # a folder\n")
    listed = find_bags([], listing)
    assert str(listed[0].rel) == "old" and {str(b.rel) for b in listed[1:]} == {
        "run01", "run03", "run05", "run07", "run09", "run11", "run13", "run15", "broken"}
    assert len(find_bags([str(fleet / "site_a"), str(fleet / "site_a" / "run01")])) == 9  # each bag once


@pytest.mark.parametrize("args,message", [
    (["nope"], "no such bag or folder"),
    (["*.nothing"], "matches nothing"),
    ([], "no bag given"),
])
def test_naming_no_bag_is_refused_with_the_reason(tmp_path, args, message):
    with pytest.raises(BagError, match=message):
        find_bags(args, cwd=tmp_path)


@pytest.mark.parametrize("args,message", [(["--workers", "0"], "--workers 0: give at least 1"),
                                          (["--cpus-per-worker", "0"], "--cpus-per-worker 0.0: give a positive")])
def test_a_pool_that_cannot_run_is_refused_before_anything_is_written(fleet, tmp_path, capsys, args, message):
    assert main(["replay", str(fleet / "site_a"), "--out", str(tmp_path / "run"), *args]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_two_bags_that_would_write_one_output_are_refused(tmp_path):
    for site in ("a", "b"):
        write_bag(tmp_path / site / "run", list(moving_shapes(1, 1)))
    with pytest.raises(BagError, match="would both write run"):
        find_bags([str(tmp_path / "a" / "run"), str(tmp_path / "b" / "run")])
    assert {str(b.rel) for b in find_bags([str(tmp_path)])} == {"a/run", "b/run"}  # their parent keeps them apart


def test_the_fingerprint_follows_the_content_and_the_ledger_its_latest_complete_line(tmp_path):
    bag = tmp_path / "x.bag"
    bag.write_bytes(b"a" * 3_000_000)
    size, fp = input_fingerprint(bag)
    bag.write_bytes(b"a" * 2_999_999 + b"b")  # the last byte changes
    assert input_fingerprint(bag) == (size, input_fingerprint(bag)[1]) and input_fingerprint(bag)[1] != fp
    ledger, key = Ledger(tmp_path), RunKey("m", "o", "v")
    out = tmp_path / "out"
    out.mkdir()
    ledger.append({"rel": "x", "status": "failed", "fingerprint": fp, "model": "m", "options": "o", "version": "v"})
    ledger.append({"rel": "x", "status": "ok", "fingerprint": fp, "model": "m", "options": "o", "version": "v"})
    with open(ledger.path, "a") as fh:
        fh.write('{"rel": "y", "stat')  # a line a crash cut short
    record = ledger.load()["x"]
    assert is_complete(record, fp, key, out) and list(ledger.load()) == ["x"]
    for other in (RunKey("m2", "o", "v"), RunKey("m", "o2", "v"), RunKey("m", "o", "v2")):
        assert not is_complete(record, fp, other, out)
    assert not is_complete(record, "other", key, out) and not is_complete(record, fp, key, tmp_path / "gone")
    ledger.compact(["x"])
    assert len(ledger.path.read_text().splitlines()) == 1


def test_one_bag_needs_no_ray_and_many_say_how_to_install_it(fleet, singles, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as where Ray is not installed
    one = fleet / "site_a" / "run01"
    assert main(["replay", str(one), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert same_output(tmp_path / "run" / "run01", singles["site_a/run01"])
    assert main(["replay", str(fleet / "site_a"), "--out", str(tmp_path / "run2"), "--no-progress"]) == 2
    assert "pip install 'yolov5_dpu_ros[fleet]'" in capsys.readouterr().err


def test_an_interrupted_bag_leaves_nothing_half_written(fleet, tmp_path, monkeypatch):
    interrupt_at_frame(monkeypatch, 4)
    run = tmp_path / "run"
    assert main(["replay", str(fleet / "site_a" / "run01"), "--out", str(run), "--no-progress"]) == 130
    assert not (run / "run01").exists() and not partials(run)


def test_a_bag_of_unreadable_frames_fails_keeping_the_first_problems(tmp_path):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    t = store.types
    bag = tmp_path / "in" / "broken_frames"
    with Writer(bag, version=8) as writer:
        conn = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=store)
        for i in range(7):  # 4x4 bgr8 frames carrying 10 bytes instead of 48
            header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=i, nanosec=0), frame_id="c")
            msg = t["sensor_msgs/msg/Image"](header=header, height=4, width=4, encoding="bgr8", is_bigendian=0,
                                             step=12, data=np.zeros(10, np.uint8))
            writer.write(conn, i * 10**9, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    run = tmp_path / "run"
    assert main(["replay", str(bag), "--out", str(run), "--no-progress"]) == 1
    (line,) = summary(run)
    assert line["status"] == "failed" and line["reason"] == "no readable frame (7 unreadable)"
    assert len(line["messages"]) == 5 and all("skipped a bad frame" in m for m in line["messages"])
    assert not (run / "broken_frames").exists() and not partials(run)


def test_tracking_and_depth_outputs_equal_the_single_bag_command(tmp_path):
    rgbd = tmp_path / "in" / "rgbd"
    write_rgbd_bag(rgbd, frames=4)
    depth = ["--topics", "/camera/color/image_raw", "--depth-topic", "/camera/aligned_depth_to_color/image_raw",
             "--track"]
    assert main(["bag", str(rgbd), "--out", str(tmp_path / "single"), "--no-progress", *depth]) == 0
    assert main(["replay", str(rgbd), "--out", str(tmp_path / "run"), "--no-progress", *depth]) == 0
    assert detections(tmp_path / "single", DETECTIONS_3D) and same_output(tmp_path / "run" / "rgbd",
                                                                         tmp_path / "single")
    first = summary(tmp_path / "run")[0]["options"]
    assert main(["replay", str(rgbd), "--out", str(tmp_path / "run"), "--no-progress"]) == 0  # other options
    assert summary(tmp_path / "run")[0]["options"] != first  # so the bag was redone
    assert not detections(tmp_path / "run" / "rgbd", DETECTIONS_3D)


# --- on Ray ---------------------------------------------------------------------------------------------------------


# a driver joining a cluster with token authentication says so (Ray's docs); set here, since ray.init in this process
# (the embedded test) leaves its own choice in os.environ
JOIN = {**os.environ, "RAY_AUTH_MODE": "token"}


# Ray's fixed default ports (GCS, dashboard, client server, dashboard agent) and its worker ports: a free port the
# system hands out may be one of them, and `ray start` then refuses to start (52365 was, once)
RAY_OWN_PORTS = {6379, 8265, 10001, 52365, *range(10002, 20000)}


def _free_port(*taken: int) -> int:
    """A free port on this machine that none of Ray's own components claims by default, nor ``taken``."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RAY_OWN_PORTS and port not in taken:
            return port


@pytest.fixture(scope="module")
def cluster():
    """A Ray head on this machine with 2 CPUs and one 'dpu' unit, as `ray start` makes it on a board, with Ray's
    default token authentication (the drivers that join it run in processes of their own, with JOIN's setting):
    (its address, its Ray Client address)."""
    pytest.importorskip("ray", reason="ray is not installed here")
    ray_cli = Path(sys.executable).with_name("ray")
    port = _free_port()
    client = _free_port(port)
    subprocess.run([str(ray_cli), "start", "--head", f"--port={port}", f"--ray-client-server-port={client}",
                    "--num-cpus=2", "--resources={\"dpu\": 1}", "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, capture_output=True, timeout=120, env=JOIN)
    yield f"127.0.0.1:{port}", f"ray://127.0.0.1:{client}"
    subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, timeout=120)


def _replay(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "yolov5_dpu_ros.cli.main", "replay", *args, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=JOIN)


def _worker_pids() -> list[int]:
    """Processes Ray runs a BagWorker actor in (Ray titles them ray::BagWorker)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::BagWorker"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until ``predicate()``; the command's own output when it ends first or the time runs out."""
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"replay ended ({proc.returncode}) or timed out before the test could act:\n{out}\n{err}")
        time.sleep(0.05)


@pytest.mark.needs("ray")
def test_the_embedded_cluster_runs_many_bags_by_default(fleet, singles, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["replay", str(fleet / "site_b" / "day1"), "--out", str(run), "--workers", "2"]) == 0
    lines = summary(run)
    assert len(lines) == 9 and {r["status"] for r in lines} == {"ok"}
    for r in lines:
        assert same_output(run / r["rel"], singles[f"site_b/day1/{r['rel']}"])
    err = capsys.readouterr().err
    assert "bags [" in err and "9/9" in err and "frames 108/108" in err  # one bar over bags and frames


@pytest.mark.needs("ray")
def test_a_worker_killed_mid_run_costs_nothing_and_reruns_skip_what_is_complete(cluster, fleet, singles, tmp_path):
    cluster, _ = cluster
    run = tmp_path / "run"
    proc = _replay([str(fleet), "--out", str(run), "--address", cluster, "--workers", "2"])
    def workers_done() -> set[str]:  # pids of the workers that have finished a bag
        if not (run / SUMMARY).exists():
            return set()
        return {json.loads(line)["worker"].rsplit(":", 1)[1] for line in (run / SUMMARY).read_text().splitlines()}

    _wait_for(lambda: len(workers_done()) == 2, proc)  # both workers busy: each is now in the middle of its next bag
    killed = int(sorted(workers_done())[0])
    assert killed in _worker_pids()
    os.kill(killed, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    lines = summary(run)
    assert len(lines) == GOOD + CORRUPT  # one line per bag, whatever happened
    ok = [r for r in lines if r["status"] == "ok"]
    failed = {r["rel"]: r["reason"] for r in lines if r["status"] == "failed"}
    assert len(ok) == GOOD and set(failed) == {"site_a/broken", "site_b/truncated"}
    assert all("cannot read this bag" in reason for reason in failed.values())
    assert "2 bag(s) failed:" in err and "site_a/broken" in err and "site_b/truncated" in err
    workers = {r["worker"].rsplit(":", 1)[1] for r in ok}
    assert str(killed) in workers and len(workers) == 3  # Ray restarted the killed worker, which went on
    assert not partials(run)
    for r in ok:
        assert same_output(run / r["rel"], singles[r["rel"]]), r["rel"]
    stamps = {r["rel"]: (run / r["rel"]).stat().st_mtime_ns for r in ok}
    again = _replay([str(fleet), "--out", str(run), "--address", cluster])
    out, err = again.communicate(timeout=300)
    assert again.returncode == 1 and f"{GOOD} bag(s) already complete" in err  # the corrupt ones are still failed
    assert f"{CORRUPT} bag(s) failed on their own unchanged input before, not tried again" in err
    assert {r["rel"]: (run / r["rel"]).stat().st_mtime_ns for r in ok} == stamps and summary(run) == lines
    forced = _replay([str(fleet / "site_*" / "run01"), "--out", str(run), "--address", cluster, "--force"])
    forced.communicate(timeout=300)
    assert forced.returncode == 0 and (run / "site_a" / "run01").stat().st_mtime_ns != stamps["site_a/run01"]
    assert {r["rel"]: (run / r["rel"]).stat().st_mtime_ns for r in ok if r["rel"] != "site_a/run01"} == {
        k: v for k, v in stamps.items() if k != "site_a/run01"}


@pytest.mark.needs("ray")
def test_a_remote_cluster_is_reached_through_ray_client(cluster, fleet, singles, tmp_path):
    _, client = cluster
    run = tmp_path / "run"
    proc = _replay([str(fleet / "site_*" / "run0[13]"), "--out", str(run), "--address", client])
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert {r["rel"] for r in summary(run)} == {"site_a/run01", "site_a/run03"}
    for rel in ("site_a/run01", "site_a/run03"):
        assert same_output(run / rel, singles[rel])


@pytest.mark.needs("ray")
def test_a_model_the_workers_cannot_load_stops_the_run_with_the_reason(cluster, fleet, tmp_path):
    address, _ = cluster
    broken = tmp_path / "broken.onnx"
    broken.write_text("not an ONNX model")  # the driver only checks that it is there: the workers load it
    proc = _replay([str(fleet / "site_a"), "--out", str(tmp_path / "run"), "--address", address, "--model",
                    str(broken)])
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert "a worker could not load the model:" in err and "is not a loadable ONNX model" in err
    assert not (tmp_path / "run" / "summary.jsonl").read_text()  # no bag was marked failed for it
    assert not partials(tmp_path / "run")


@pytest.mark.needs("ray")
def test_ctrl_c_keeps_what_is_complete_and_removes_the_rest(cluster, fleet, tmp_path):
    cluster, _ = cluster
    run = tmp_path / "run"
    proc = _replay([str(fleet), "--out", str(run), "--address", cluster, "--workers", "2"])
    _wait_for(lambda: (run / SUMMARY).exists() and len((run / SUMMARY).read_text().splitlines()) >= 2, proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    lines = summary(run)
    assert not partials(run)
    done = {r["rel"] for r in lines if r["status"] == "ok"}
    written = {str(p.parent.relative_to(run)) for p in run.rglob("metadata.yaml")}
    assert done and written == done  # every output on disk is complete and recorded, nothing else


@pytest.mark.needs("ray")
def test_dpu_workers_take_one_dpu_unit_each(cluster, fleet, tmp_path):
    from yolov5_dpu_ros.replay.fleet import RaySettings, pool_size

    with pytest.raises(ValueError, match="--resources"):
        pool_size(RaySettings(dpu=True), {"CPU": 8.0})
    bags = [str(b.path) for b in find_bags([str(fleet / "site_a")])[:4]]
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("fleet_placement.py")), cluster[0], *bags,
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, env=JOIN)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["pool_dpu"] == 1 and report["pool_cpu"] == 2  # one DPU process on the one board; 2 CPUs
    assert report["bags_dpu_True"] == report["bags_dpu_False"] == 4
    assert len(report["workers_dpu_True"]) == 1 and len(report["workers_dpu_False"]) == 2


# --- comparing two fleet runs ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs(fleet, tmp_path_factory) -> tuple[Path, Path]:
    """Run A (default threshold) holds run01, run03, run05; run B (--conf 0.6) run01, run03, run07."""
    root = tmp_path_factory.mktemp("runs")
    for run, names, extra in ((root / "A", ("run01", "run03", "run05"), []),
                              (root / "B", ("run01", "run03", "run07"), ["--conf", "0.6"])):
        for name in names:  # one bag a command: no Ray needed
            assert main(["replay", str(fleet / "site_a" / name), "--out", str(run), "--no-progress", *extra]) == 0
    return root / "A", root / "B"


def _numbers(text: str) -> tuple[float, float]:
    import re

    m = re.search(r"precision of B against A: ([0-9.]+)\s+recall: ([0-9.]+)", text)
    assert m, text
    return float(m.group(1)), float(m.group(2))


def test_two_fleet_runs_are_compared_bag_by_bag_most_changed_first(two_runs, capsys):
    a, b = two_runs
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    rows = [line.split() for line in text.splitlines()[1:3]]
    assert [r[0] for r in rows] and {r[0] for r in rows} == {"run01", "run03"}
    assert float(rows[0][1]) >= float(rows[1][1])  # most changed first
    assert "only in A (1): run05" in text and "only in B (1): run07" in text
    for row in rows:  # each bag's numbers are the single-bag comparison's
        assert main(["compare", str(a / row[0]), str(b / row[0])]) == 0
        single = _numbers(capsys.readouterr().out)
        assert (float(row[2]), float(row[3])) == pytest.approx(single, abs=1e-4)
        assert single[0] == 1.0 and single[1] < 1.0  # a stricter B: fewer detections, all agreeing
    per_class = next(line for line in text.splitlines() if line.startswith("per class:"))
    assert "circle P 1.0000" in per_class


@pytest.mark.needs("matplotlib")
def test_the_fleet_plot_shows_each_bags_change(two_runs, tmp_path, capsys):
    a, b = two_runs
    assert main(["compare", str(a), str(b), "--plot", str(tmp_path / "fleet.png")]) == 0
    assert (tmp_path / "fleet.png").stat().st_size > 10_000


def test_a_bag_and_a_fleet_run_are_not_compared(two_runs, capsys):
    a, _ = two_runs
    assert main(["compare", str(a), str(a / "run01")]) == 2
    assert "is a replay run" in capsys.readouterr().err


def test_a_bag_whose_frames_are_all_missing_counts_as_fully_changed():
    from yolov5_dpu_ros.replay.comparison import Agreement

    gone = Agreement(frames_a=10, frames_b=0, missing_in_b=10)
    assert gone.change() == 1.0 and gone.precision() == 1.0 and gone.recall() == 1.0  # no detection either side
    same = Agreement(frames_a=10, frames_b=10)
    same.n_a.update({"cat": 3})
    same.n_b.update({"cat": 3})
    same.tp.update({"cat": 3})
    assert same.change() == 0.0
    same.n_b.update({"dog": 1})
    assert same.change() == pytest.approx(1 - 2 * 0.75 * 1.0 / 1.75)
