"""The documentation site (doc/) and the README front page: one source for each fact, pages that name only what
exists, a site that builds without a warning with every local link resolved, and every quick-start command run."""

from __future__ import annotations

import html.parser
import math
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "doc"
sys.path.insert(0, str(DOC))

from reference import NAMES, TABLES  # noqa: E402  (doc/ holds the generator)

from yolov5_dpu_ros.cli.main import main  # noqa: E402
from yolov5_dpu_ros.core.postprocess import PostprocessConfig  # noqa: E402
from yolov5_dpu_ros.core.tracking import TrackerConfig  # noqa: E402
from yolov5_dpu_ros.ros.camera_state import CameraState  # noqa: E402
from yolov5_dpu_ros.ros.diagnostics import CAMERA_KEYS, NODE_KEYS, camera_status, node_status  # noqa: E402
from yolov5_dpu_ros.ros.param_spec import LAUNCH_ARGUMENTS, LAUNCH_EXTRA, PARAMETERS  # noqa: E402

PAGES = sorted(DOC.glob("*.md"))
LAUNCH_NAMES = set(LAUNCH_ARGUMENTS) | set(LAUNCH_EXTRA)


def unknown_names(text: str) -> list[str]:
    """What a page names that the code does not define: role targets, launch arguments (``name:=``), node
    parameters (``-p name:=``, ``ros2 param set /yolov5_dpu name``)."""
    problems = [f"{kind} {name}" for kind, name in re.findall(r"\{(param|topic|diag)\}`([^`]+)`", text)
                if name not in NAMES[kind]]
    for match in re.finditer(r"(-p |-r |\s|^)([a-z_]+):=", text, re.M):
        flag, name = match.groups()
        if flag == "-r ":
            continue  # a remap: from:=to names topics
        known = PARAMETERS if flag == "-p " else LAUNCH_NAMES
        if name not in known:
            problems.append(f"{'parameter' if flag == '-p ' else 'launch argument'} {name}")
    problems += [f"parameter {name}" for name in re.findall(r"ros2 param (?:set|get) /yolov5_dpu (\w+)", text)
                 if name not in PARAMETERS]
    return problems


def test_every_parameter_and_launch_argument_says_what_it_is():
    for name, p in PARAMETERS.items():
        assert len(p.description.split()) >= 3, f"parameter {name} has no description"
    for name, (_, text) in LAUNCH_EXTRA.items():
        assert len(text.split()) >= 3, f"launch argument {name} has no description"
    assert not set(LAUNCH_EXTRA) & set(PARAMETERS)


def _equal(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b)
    return a == b and type(a) is type(b)


def test_detect_yaml_holds_param_spec_defaults():
    values = yaml.safe_load((ROOT / "config" / "detect.yaml").read_text())["/**"]["ros__parameters"]
    assert values, "config/detect.yaml holds no parameters"
    assert set(values) <= set(PARAMETERS), set(values) - set(PARAMETERS)
    wrong = {name: (value, PARAMETERS[name].default) for name, value in values.items()
             if not _equal(value, PARAMETERS[name].default)}
    assert wrong == {}, f"config/detect.yaml and param_spec disagree (yaml, spec): {wrong}"


@pytest.mark.parametrize("page", PAGES + [ROOT / "README.md"], ids=lambda p: p.name)
def test_a_page_names_only_parameters_topics_and_keys_that_exist(page):
    assert unknown_names(page.read_text()) == []


@pytest.mark.parametrize("text,problem", [
    ("{param}`conf_treshold`", "param conf_treshold"), ("{topic}`detection`", "topic detection"),
    ("{diag}`bad frame`", "diag bad frame"), ("ros2 launch yolov5_dpu_ros detect.launch.py conf:=0.3",
                                              "launch argument conf"),
    ("--ros-args -p input_topic:=x", "parameter input_topic"), ("ros2 param set /yolov5_dpu iou 0.5",
                                                                  "parameter iou"),
])
def test_the_page_check_catches_a_misspelt_name(text, problem):
    assert unknown_names(text) == [problem]
    assert unknown_names("{param}`conf_threshold` input_topic:=/a -p input_topics:=[a] -r image_raw:=/c "
                         "{diag}`bad frames` {topic}`detections_3d` ros2 param set /yolov5_dpu workers 2") == []


def test_the_node_fills_exactly_the_documented_diagnostics_keys():
    state = CameraState(TrackerConfig(), with_depth=True)
    state.received(1.0)
    values = camera_status("active", state.window(2.0, 0), "reliable").values
    assert list(values) == list(CAMERA_KEYS)
    configured = {"backend": "onnx", "model": "m.onnx", "workers": "2", "processed frames (all cameras)": "0",
                  "publish errors (all cameras)": "0"}
    assert set(node_status("active", configured).values) == set(NODE_KEYS)


def test_the_tables_are_generated_from_the_code():
    tables = {name: make() for name, make in TABLES.items()}
    for name, p in PARAMETERS.items():
        assert f"| `{name}` |" in tables["parameters"] and p.description.split()[0] in tables["parameters"]
    assert all(f"`{key}`" in tables["diagnostics"] for key in CAMERA_KEYS)
    assert "`yuv422_yuy2`" in tables["encodings"] and "`yolox`" in tables["families"]
    assert "transient local" in tables["topics"] and "vision_msgs/msg/Detection2DArray" in tables["topics"]
    assert PostprocessConfig().conf_threshold == PARAMETERS["conf_threshold"].default


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.tags: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.hrefs.append(attrs[key])


def broken_links(site: Path) -> list[str]:
    """Every local href/src of the built site whose file or anchor does not exist."""
    parsed = {}
    for page in site.rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text())
        parsed[page] = parser
    broken = []
    for page, parser in parsed.items():
        for href in parser.hrefs:
            url = urlparse(href)
            if url.scheme or href.startswith("//") or href.startswith("mailto:"):
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if not target.exists():
                broken.append(f"{page.name}: {href} (no file)")
            elif url.fragment and target.suffix == ".html" and url.fragment not in parsed[target].ids:
                broken.append(f"{page.name}: {href} (no anchor)")
    return broken


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as CI builds it: ``sphinx-build -W`` (a warning fails the build)."""
    pytest.importorskip("myst_parser", reason="myst_parser is not installed here (doc/requirements.txt)")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(DOC), str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_the_site_builds_with_every_page_and_local_link(site):
    assert broken_links(site) == []
    for page in PAGES:
        assert (site / page.with_suffix(".html").name).is_file(), page.name
    quickstart = _Links()
    quickstart.feed((site / "quickstart.html").read_text())
    assert quickstart.tags.get("pre", 0) >= 2 and quickstart.tags.get("img", 0) >= 1


def test_the_link_check_catches_a_missing_anchor_and_file(tmp_path):
    (tmp_path / "a.html").write_text('<p id="here"><a href="a.html#here">ok</a><a href="a.html#gone">x</a>'
                                     '<a href="b.html">y</a><img src="_images/p.svg"></p>')
    assert broken_links(tmp_path) == ["a.html: a.html#gone (no anchor)", "a.html: b.html (no file)",
                                      "a.html: _images/p.svg (no file)"]


def test_the_readme_is_a_front_page_linking_every_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    linked = set(re.findall(r"\]\(doc/([a-z_]+)\.md\)", text))
    assert linked == {p.stem for p in PAGES} - {"index", "api"}
    for heading in ("## Two commands on a fresh machine", "## ROS 2 quick start", "## Board quick start",
                    "## Documentation", "## License"):
        assert heading in text


def quick_start_commands() -> list[str]:
    """The commands of the README and the quick-start page: indented (4 spaces) or fenced shell lines."""
    commands = []
    for path in (ROOT / "README.md", DOC / "quickstart.md"):
        for line in path.read_text().splitlines():
            if line.startswith("    ") and not line.startswith("     ") and not line.strip().startswith("["):
                commands.append(line.strip())
    return commands


SHELL_SETUP = {"sudo -i", "source install/setup.bash",
               "source /etc/profile.d/pynq_venv.sh && source /opt/ros/humble/setup.bash && source "
               "~ubuntu/ros2_ws/install/setup.bash"}
BOARD_ONLY = {"cd $PYNQ_JUPYTER_NOTEBOOKS && pynq get-notebooks pynq-dpu -p . --force"}


def test_every_quick_start_command_is_run_or_checked_by_a_test():
    """Each command: run here (detect, doctor), run by CI or another test (run.sh, colcon build), run where ROS 2
    is (ros2 launch, rosdep: test_the_ros_quick_start_launches), or board-only with its arguments checked."""
    handled = []
    for command in quick_start_commands():
        if command in SHELL_SETUP or command in BOARD_ONLY:
            handled.append(command)
        elif command.startswith(("python3 -m venv", "yolov5-dpu ", "ros2 run yolov5_dpu_ros yolov5-dpu ",
                                 "ray start ")):  # the flags: test_every_readme_command_names_only_known_flags
            handled.append(command)
        elif command == "bash test/run.sh":
            assert "bash test/run.sh" in (ROOT / ".ci" / "run").read_text()
            handled.append(command)
        elif command.startswith(("cd ~/ros2_ws && rosdep install", "ros2 launch yolov5_dpu_ros detect.launch.py")):
            assert unknown_names(command) == []
            handled.append(command)
    assert handled == quick_start_commands()
    board_launch = next(c for c in quick_start_commands() if "backend:=dpu" in c)
    preset = re.search(r"share/yolov5_dpu_ros/(config/models/\S+\.yaml)", board_launch).group(1)
    assert (ROOT / preset).is_file()


def test_the_quick_start_detect_and_doctor_commands_run_here(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").symlink_to(ROOT / "demo")
    for command in quick_start_commands():
        if "yolov5-dpu detect" in command:
            args = command.split("yolov5-dpu ", 1)[1].split()
            assert main([*args, "--no-progress"]) == 0
            assert (tmp_path / "out" / "detections.jsonl").stat().st_size > 0
        elif "yolov5-dpu doctor" in command:
            assert main(command.split("yolov5-dpu ", 1)[1].split()) == 1  # no board here
            assert capsys.readouterr().out.startswith("✗ DPU stack: pynq-dpu not installed")


@pytest.mark.needs("rclpy")
def test_the_ros_quick_start_launches(tmp_path):
    """On a ROS 2 machine with the package built and sourced: the README's launch reaches active."""
    import shutil

    if shutil.which("ros2") is None or subprocess.run(["ros2", "pkg", "prefix", "yolov5_dpu_ros"],
                                                      capture_output=True).returncode != 0:
        pytest.skip("the package is not built and sourced in this ROS 2 environment (colcon build; source "
                    "install/setup.bash)")
    command = next(c for c in quick_start_commands() if c.startswith("ros2 launch") and "backend:=dpu" not in c)
    launch = subprocess.Popen(command.split(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        state = ""
        for _ in range(30):
            done = subprocess.run(["ros2", "lifecycle", "get", "/yolov5_dpu"], capture_output=True, text=True,
                                  timeout=20)
            state = done.stdout
            if state.startswith("active"):
                break
            subprocess.run(["sleep", "1"])
        assert state.startswith("active"), state
    finally:
        launch.terminate()
        launch.wait(timeout=20)


def _flags(command: str) -> list[str]:
    return re.findall(r"(?<!\S)(--[a-z][a-z0-9-]*)", command.split("#", 1)[0])


def test_every_readme_command_names_only_known_flags(capsys):
    """yolov5-dpu commands against their sub-command's own help; ray start against Ray's (where Ray is installed)."""
    commands = [c for c in quick_start_commands() if c.startswith(("yolov5-dpu ", "ray start "))]
    assert any(c.startswith("yolov5-dpu replay") for c in commands)
    for command in commands:
        if command.startswith("ray start "):
            continue
        sub = command.split()[1]
        with pytest.raises(SystemExit):
            main([sub, "--help"])
        known = capsys.readouterr().out
        assert all(flag in known for flag in _flags(command)), command


@pytest.mark.needs("ray")
def test_the_readme_ray_start_commands_use_flags_ray_knows():
    known = subprocess.run([str(Path(sys.executable).with_name("ray")), "start", "--help"], capture_output=True,
                           text=True, timeout=60).stdout
    commands = [c for c in quick_start_commands() if c.startswith("ray start ")]
    assert commands
    for command in commands:
        assert all(flag in known for flag in _flags(command)), command
