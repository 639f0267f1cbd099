"""The command line refuses bad options before any work, writes every output atomically (a full disk or Ctrl-C
leaves the previous file), reports a user's task file's errors as the user's, and exports the circuit `discover`
reports."""

import errno
import json
import os

import pytest
from conftest import run_edgewise

import edgewise.interventions
import edgewise.suite.tasks

# tracr-reverse's circuit under resample ablation (docs/ground-truth.md): what discover's EAP circuit is, 2 edges
REVERSE_RESAMPLE_CIRCUIT = {("Resid Start", "A3.0.V"), ("A3.0", "Resid End")}


@pytest.fixture
def no_work(monkeypatch):
    """Makes loading a task, fitting a method's circuit or comparing removals fail the test: a refusal must come
    before any of them."""

    def work(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    for module, name in [
        (edgewise.suite.tasks, "get_task"),
        (edgewise.suite.tasks, "task_split"),
        (edgewise.interventions, "discovered_circuits"),
        (edgewise.interventions, "compare_removals"),
    ]:
        monkeypatch.setattr(module, name, work)


def _one_line(stderr: str) -> str:
    """Returns the error's line; fails unless edgewise printed exactly one (argparse's usage lines aside)."""
    lines = [line for line in stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--method", "eap", "--top-k", "-5"], "argument --top-k: '-5' is below 1"),
        (["--method", "eap", "--top-k", "0"], "argument --top-k: '0' is below 1"),
        (["--method", "eap", "--random-seeds", "-2"], "argument --random-seeds: '-2' is negative"),
        (["--method", ","], "argument --method: ',' names nothing"),
        (["--method", "eap", "--retain", "tracr-reverse"], "--retain names the forget task tracr-reverse"),
        (["--method", "eap", "--retain", "tracr-sort,tracr-sort"], "--retain names tracr-sort twice"),
        (["--method", "eap", "--retain", "tracr-sortt"], "unknown task 'tracr-sortt'. Did you mean 'tracr-sort'?"),
        (["--method", "eap", "--task-vector", "1,nan"], "argument --task-vector: 'nan' is not a finite number"),
        (["--method", "eap", "--task-vector", "inf"], "argument --task-vector: 'inf' is not a finite number"),
        (["--method", "eap,edge-sp,no-such-method"], "unknown method 'no-such-method'"),
        (["--method", "eap", "--relearn-steps", "-1"], "argument --relearn-steps: '-1' is negative"),
        (["--method", "eap", "--edit-lr", "0"], "argument --edit-lr: '0' is not above 0"),
        (["--method", "eap", "--removal-mask", "--mask-steps", "0"], "argument --mask-steps: '0' is below 1"),
        (["--method", "eap", "--mask-alpha", "2"], "--mask-alpha sets the removal mask, which runs only with"),
        (["--method", "eap", "--ablation", "half"], "argument --ablation: invalid choice: 'half'"),
        (["--circuit", "c.json", "--top-k", "3"], "--top-k sizes the circuits that --method discovers"),
    ],
)
def test_remove_refuses_bad_options_before_any_work(no_work, tmp_path, options, message):
    out = tmp_path / "r.json"
    result = run_edgewise("remove", "tracr-reverse", *options, "--json", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in _one_line(result.stderr)
    assert not out.exists()


@pytest.mark.parametrize(
    "command, message",
    [
        (["discover", "tracr-reverse", "--top-k", "0"], "argument --top-k: '0' is below 1"),
        (["discover", "tracr-reverse", "--ablation", "half"], "argument --ablation: invalid choice: 'half'"),
        (["discover", "tracr-reverse", "--features", "sae:"], "unknown feature set 'sae:'"),
        (["discover", "tracr-revers"], "unknown task 'tracr-revers'"),
        (["discover", "tracr-reverse", "--features", "sae:/no/such/folder"], "/no/such/folder is not a folder"),
        (["demo", "--task", "induction", "--out", "{tmp}/d"], "runs on tracr tasks only, not 'induction'"),
        (["diagnose", "tracr-reverse", "--ablations", ","], "argument --ablations: ',' names nothing"),
        (["diagnose", "tracr-reverse", "--ablations", "mean,half"], "unknown ablation 'half'"),
        (["bench", "--out", "{tmp}/b", "--jobs", "0"], "argument --jobs: '0' is below 1"),
        (["bench", "--out", "{tmp}/b", "--seeds", "0,x"], "argument --seeds: 'x' is not a whole number"),
    ],
)
def test_other_commands_refuse_bad_options_before_any_work(no_work, tmp_path, command, message):
    result = run_edgewise(*(a.format(tmp=tmp_path) for a in command))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in _one_line(result.stderr)
    assert list(tmp_path.iterdir()) == []  # no output folder made


def test_the_command_lines_ablations_are_the_librarys():
    from edgewise.cli.main import ABLATION_NAMES
    from edgewise.patching.ablation import Ablation

    assert set(ABLATION_NAMES) == {a.value for a in Ablation}


@pytest.mark.parametrize(
    "command",
    [
        ["discover", "tracr-reverse", "--json", "{same}", "--circuit-out", "{same}"],
        ["remove", "tracr-reverse", "--method", "eap", "--json", "{same}", "--plot", "{same}"],
        ["remove", "tracr-reverse", "--method", "eap", "--json", "{dir}/rr.svg", "--plot", "{dir}/rr.png"],
        ["import", "{dir}/m.json", "--task", "tracr-reverse", "--out", "{same}", "--circuit-out", "{same}"],
    ],
)
def test_two_outputs_with_one_path_are_refused_before_any_work(no_work, tmp_path, command):
    same = tmp_path / "rr.png"
    args = [a.format(same=same, dir=tmp_path) for a in command]
    result = run_edgewise(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    line = _one_line(result.stderr)
    assert "both name" in line and "give each its own path" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, no temporary file left


def test_an_output_that_would_overwrite_the_input_is_refused(tmp_path):
    scores = tmp_path / "s.json"
    scores.write_text("{}")
    result = run_edgewise("export", str(scores), "--out", str(scores))
    assert result.returncode == 2 and "would destroy the input" in _one_line(result.stderr)
    assert scores.read_text() == "{}"


def _full_disk(monkeypatch):
    """Makes every flush to disk fail as a full disk does."""

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_leaves_the_previous_file_and_ends_in_one_line(tmp_path, monkeypatch):
    out = tmp_path / "g.json"
    out.write_text("the previous graph")
    _full_disk(monkeypatch)
    result = run_edgewise("graph", "tracr-reverse", "--json", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the disk is full" in _one_line(result.stderr) and str(out) in result.stderr
    assert out.read_text() == "the previous graph"
    assert [p.name for p in tmp_path.iterdir()] == ["g.json"]  # no temporary file left behind


def test_a_full_disk_during_discover_keeps_both_previous_files(tmp_path, monkeypatch):
    scores, circuit = tmp_path / "s.json", tmp_path / "c.json"
    scores.write_text("old scores")
    circuit.write_text("old circuit")
    _full_disk(monkeypatch)
    result = run_edgewise(
        "discover", "tracr-reverse", "--method", "eap", "--json", str(scores), "--circuit-out", str(circuit)
    )
    assert result.returncode == 2 and "the disk is full" in _one_line(result.stderr)
    assert (scores.read_text(), circuit.read_text()) == ("old scores", "old circuit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "s.json"]


def test_a_full_disk_keeps_the_previous_plot(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from edgewise.errors import OutputPathError
    from edgewise.report import save_figure

    png = tmp_path / "curve.png"
    png.write_bytes(b"previous png")
    _full_disk(monkeypatch)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    with pytest.raises(OutputPathError, match="the disk is full"):
        save_figure(fig, png)
    assert png.read_bytes() == b"previous png"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]
    assert not plt.fignum_exists(fig.number)  # closed although the write failed


def test_ctrl_c_exits_130_with_one_line(no_work, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(edgewise.suite.tasks, "get_task", interrupted)
    result = run_edgewise("discover", "tracr-reverse", "--method", "eap")
    assert result.returncode == 130
    assert len(result.stderr.strip().splitlines()) == 1 and "interrupted" in result.stderr


def test_ctrl_c_while_writing_leaves_the_previous_file(tmp_path, monkeypatch):
    out = tmp_path / "g.json"
    out.write_text("the previous graph")

    def fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", fsync)
    result = run_edgewise("graph", "tracr-reverse", "--json", str(out))
    assert result.returncode == 130 and len(result.stderr.strip().splitlines()) == 1
    assert out.read_text() == "the previous graph"
    assert [p.name for p in tmp_path.iterdir()] == ["g.json"]


@pytest.mark.parametrize(
    "source, error, frames",
    [
        (
            "def helper():\n    raise ValueError('no model here')\n\ndef make():\n    return helper()\n",
            "failed with ValueError: no model here",
            ["line 5, in make", "line 2, in helper"],
        ),
        ("def make(:\n    pass\n", "failed with SyntaxError", ["line 1"]),
        ("import no_such_module_anywhere\n\ndef make():\n    pass\n", "failed with ModuleNotFoundError", ["line 1"]),
    ],
)
def test_a_failing_task_file_is_reported_as_the_users_error(tmp_path, source, error, frames):
    task_file = tmp_path / "my_task.py"
    task_file.write_text(source)
    result = run_edgewise("graph", f"{task_file}:make")
    assert result.returncode == 2
    first, *traceback = result.stderr.strip().splitlines()
    assert first.startswith("edgewise: error: ") and f"{task_file}:make" in first and error in first
    shown = "\n".join(traceback)
    assert all(f'File "{task_file}", {frame}' in shown for frame in frames), shown
    frame_files = [line.split('"')[1] for line in traceback if line.strip().startswith('File "')]
    assert frame_files and set(frame_files) == {str(task_file)}  # the user's frames only, none of edgewise's


@pytest.mark.parametrize("returned, type_name", [("{'task': 1}", "dict"), ("None", "NoneType")])
def test_a_task_file_that_returns_no_task_is_a_specific_error(tmp_path, returned, type_name):
    task_file = tmp_path / "my_task.py"
    task_file.write_text(f"def make():\n    return {returned}\n")
    result = run_edgewise("discover", f"{task_file}:make", "--method", "eap")
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert f"returned a {type_name}, not an edgewise Task" in line and f"{task_file}:make" in line


@pytest.fixture(scope="module")
def reverse_eap(tmp_path_factory):
    """Runs `discover tracr-reverse --method eap` once; returns its scores file and the circuit it reported."""
    folder = tmp_path_factory.mktemp("reverse-eap")
    scores, circuit = folder / "s.json", folder / "c.json"
    result = run_edgewise(
        "discover", "tracr-reverse", "--method", "eap", "--json", str(scores), "--circuit-out", str(circuit)
    )
    assert result.returncode == 0, result.stderr
    return scores, circuit


def test_export_marks_the_circuit_discover_reported(reverse_eap, tmp_path):
    scores, circuit = reverse_eap
    discovered = {tuple(e) for e in json.loads(circuit.read_text())["edges"]}
    assert discovered == REVERSE_RESAMPLE_CIRCUIT
    out = tmp_path / "m.json"
    result = run_edgewise("export", str(scores), "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    in_graph = {name for name, entry in record["edges"].items() if entry["in_graph"]}
    assert in_graph == {"input->a3.h0<v>", "a3.h0->logits"}  # MIB's names of the two edges
    assert record["cfg"] == {"n_layers": 4, "n_heads": 1, "parallel_attn_mlp": False, "d_model": 41}


def test_export_refuses_edges_the_graph_does_not_hold(reverse_eap, tmp_path):
    record = json.loads(reverse_eap[0].read_text())
    record["scores"].append(["A7.0", "Resid End", 1.0])
    edited, out = tmp_path / "s.json", tmp_path / "m.json"
    edited.write_text(json.dumps(record))
    result = run_edgewise("export", str(edited), "--out", str(out), "--top-k", "2")
    assert result.returncode == 2
    assert "A7.0 -> Resid End" in _one_line(result.stderr) and "does not hold" in result.stderr
    assert not out.exists()


def test_export_does_not_trust_the_task_label(reverse_eap, tmp_path):
    record = json.loads(reverse_eap[0].read_text())
    record["task"] = "tracr-proportion"  # a 2-layer model of d_model 14: not the graph these scores are on
    edited, out = tmp_path / "s.json", tmp_path / "m.json"
    edited.write_text(json.dumps(record))
    result = run_edgewise("export", str(edited), "--out", str(out), "--top-k", "2")
    assert result.returncode == 2
    assert "labelled 'tracr-proportion'" in _one_line(result.stderr)
    assert not out.exists()


def test_export_of_unlabelled_top_k_scores_asks_for_a_size(reverse_eap, tmp_path):
    record = json.loads(reverse_eap[0].read_text())
    record["task"] = ""
    edited, out = tmp_path / "s.json", tmp_path / "m.json"
    edited.write_text(json.dumps(record))
    result = run_edgewise("export", str(edited), "--out", str(out))
    assert result.returncode == 2 and "give --top-k K or --circuit FILE" in _one_line(result.stderr)
    assert run_edgewise("export", str(edited), "--out", str(out), "--top-k", "2").returncode == 0
    assert json.loads(out.read_text())["cfg"]["d_model"] == 0  # no task, so no width to trust


def test_a_full_disk_during_export_keeps_the_previous_mib_file(reverse_eap, tmp_path, monkeypatch):
    out = tmp_path / "m.json"
    out.write_text("the previous MIB file")
    _full_disk(monkeypatch)
    result = run_edgewise("export", str(reverse_eap[0]), "--out", str(out), "--top-k", "2")
    assert result.returncode == 2 and "the disk is full" in _one_line(result.stderr)
    assert out.read_text() == "the previous MIB file"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_an_interrupted_checkpoint_save_keeps_the_previous_weights(tmp_path, monkeypatch):
    import torch

    from edgewise.errors import OutputPathError
    from edgewise.suite.models import load_checkpoint, save_checkpoint

    path = tmp_path / "model.pt"
    before = torch.nn.Linear(2, 2)
    save_checkpoint(before, {"width": 2}, path)
    _full_disk(monkeypatch)
    with pytest.raises(OutputPathError, match="the disk is full"):
        save_checkpoint(torch.nn.Linear(2, 2), {"width": 2}, path)
    model, _ = load_checkpoint(path, lambda config: torch.nn.Linear(config["width"], 2), "weights")
    assert torch.equal(model.weight, before.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
