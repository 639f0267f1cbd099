"""The command line's options: `edgewise methods`, defaults in `--help`, `--show` apart from `--top-k`, `--held-out`,
`--threads` and `--device`, checks made before any work, and how edgewise's warnings print."""

import dataclasses
import importlib
import json
import re
import textwrap
import warnings

import pytest
import torch
from conftest import run_edgewise

from edgewise.errors import CacheWarning
from edgewise.evaluate import faithfulness
from edgewise.graph import Circuit
from edgewise.methods import get_method, make_config, method_names, resolve_config
from edgewise.patching import task_ablation
from edgewise.suite.tasks import get_task

cli = importlib.import_module("edgewise.cli.main")  # the module: `edgewise.cli.main` names its function too


def _must_not_run(*args, **kwargs):
    raise AssertionError("work started although the command should have been refused first")


def _method_blocks(stdout: str) -> dict[str, list[str]]:
    """Returns the lines `edgewise methods` prints under each method, by the name that opens its block."""
    blocks: dict[str, list[str]] = {}
    name = None
    for line in stdout.splitlines():
        if line and not line.startswith(" ") and ": " in line:
            name = line.split(": ")[0]
            blocks[name] = []
        elif name is not None and line.strip():
            blocks[name].append(line)
    return blocks


def _rows(block: list[str]) -> dict[str, list[str]]:
    """Returns a method block's lines split into cells, by their first cell (a hyperparameter's name)."""
    return {line.split()[0]: line.split() for line in block if line.split()}


def _parsed(method, name: str, text: str):
    """Returns the printed value `text` of hyperparameter `name` as `--set NAME=VALUE` would read it."""
    return getattr(make_config(method, {name: text}), name)


def test_methods_lists_every_registered_method_with_its_hyperparameters_defaults_and_presets():
    result = run_edgewise("methods")
    assert result.returncode == 0, result.stderr
    blocks = _method_blocks(result.stdout)
    assert set(method_names()) <= set(blocks)
    for name in method_names():
        method = get_method(name)
        fields = dataclasses.fields(method.config)
        tuned, published = method.config(), resolve_config(method, "published", {})
        rows = _rows(blocks[name])
        if not fields:
            assert "  no hyperparameters" in blocks[name]
        for field in fields:
            assert field.name in rows, f"{name}: {field.name} is not listed"
            for printed, expected in zip(
                rows[field.name][1:3], (getattr(tuned, field.name), getattr(published, field.name))
            ):
                value = _parsed(method, field.name, printed)  # what the printed default gives back through --set
                assert value == (pytest.approx(expected, rel=1e-5) if isinstance(expected, float) else expected), (
                    f"{name}: {field.name} printed {printed}, its default is {expected!r}"
                )
    acdc = " ".join(blocks["acdc"])
    assert "tau" in acdc and "threshold" in acdc  # each hyperparameter's reason, from the config's own comment
    sp_lambda = _rows(blocks["edge-sp"])["lambda_"]
    assert sp_lambda[1:3] == ["0.1", "0.5"]  # tuned 0.1, auto-circuit's 0.5 (docs/presets.md)


def test_methods_of_one_method_and_of_an_unknown_one():
    result = run_edgewise("methods", "eap")
    assert result.returncode == 0, result.stderr
    assert [name for name in _method_blocks(result.stdout) if name in method_names()] == ["eap"]
    result = run_edgewise("methods", "eapp")
    assert result.returncode == 2 and "unknown method 'eapp'" in result.stderr


@pytest.mark.parametrize(
    "command, defaults",
    [
        ("discover", ["--method", "(default: edge-sp)", "(default: resample)", "(default: tuned)", "(default: 20)"]),
        ("discover", ["(default: 0)", "(default: cpu)"]),
        ("demo", ["(default: tracr-reverse)", "(default: demo-output)", "(default: cpu)"]),
        ("bench", ["(default: 1)"]),
        ("remove", ["(default: resample)", "(default 3)", "(default: cpu)"]),
        ("export", ["(default: mib)"]),
        ("check", ["(default: cpu)"]),
    ],
)
def test_help_shows_the_defaults(command, defaults):
    result = run_edgewise(command, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for default in defaults:
        assert default in text, f"`edgewise {command} --help` lacks {default}"
    assert "(default: None)" not in text and "(default: False)" not in text


def test_show_sets_the_printed_edges_and_top_k_the_circuit(tmp_path):
    circuit = tmp_path / "circuit.json"
    result = run_edgewise(
        "discover", "tracr-reverse", "--method", "eap", "--top-k", "50", "--show", "3", "--circuit-out", str(circuit)
    )
    assert result.returncode == 0, result.stderr
    edge_lines = [line for line in result.stdout.splitlines() if re.match(r"^  [+-]\d", line)]
    assert len(edge_lines) == 3
    assert len(json.loads(circuit.read_text())["edges"]) == 50
    assert "scored on the 6 discovery inputs" in result.stdout  # tracr-reverse: ACDC's 6 permutations


def test_held_out_scores_the_circuit_on_the_held_out_inputs(tmp_path):
    circuit_file = tmp_path / "circuit.json"
    result = run_edgewise(
        "discover",
        "tracr-shift",
        "--method",
        "eap",
        "--ablation",
        "mean",  # the means differ between the input sets; under resample tracr circuits score 0 or 1 on both
        "--top-k",
        "2",
        "--held-out",
        "--circuit-out",
        str(circuit_file),
    )
    assert result.returncode == 0, result.stderr
    printed = float(re.search(r"faithfulness (-?[\d.]+|nan)", result.stdout).group(1))
    edges = set(Circuit.load(circuit_file).edges)
    held_out = get_task("tracr-shift", held_out=True)
    discovery = get_task("tracr-shift")
    graph = held_out.graph()
    on_held_out = faithfulness(held_out, graph, task_ablation(held_out, graph, "mean"), edges)
    on_discovery = faithfulness(discovery, graph, task_ablation(discovery, graph, "mean"), edges)
    assert round(on_held_out, 3) != round(on_discovery, 3), "the two input sets agree: this test could not fail"
    assert printed == pytest.approx(on_held_out, abs=5e-4)
    assert f"held-out inputs ({held_out.clean.shape[0]} examples" in result.stdout


def test_held_out_on_a_task_without_held_out_inputs_is_refused_before_work(monkeypatch):
    monkeypatch.setattr("edgewise.suite.tasks.get_task", _must_not_run)
    result = run_edgewise("discover", "tracr-reverse", "--method", "eap", "--held-out")
    assert result.returncode == 2
    assert "tracr-reverse has no held-out inputs" in result.stderr and "tracr-hist" in result.stderr


@pytest.mark.parametrize(
    "options, message",
    [
        (["--threads", "0"], "'0' is below 1"),
        (["--threads", "two"], "'two' is not a whole number"),
        (["--device", "nonesuch"], "--device 'nonesuch' is not a device of this machine; it has cpu"),
    ],
)
@pytest.mark.parametrize("command", ["discover", "check", "diagnose"])
def test_bad_threads_and_devices_are_refused_before_work(monkeypatch, command, options, message):
    monkeypatch.setattr("edgewise.suite.tasks.get_task", _must_not_run)
    result = run_edgewise(command, "tracr-reverse", *options)
    assert result.returncode == 2 and message in result.stderr, result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused_naming_what_there_is(monkeypatch):
    monkeypatch.setattr("edgewise.suite.tasks.get_task", _must_not_run)
    result = run_edgewise("discover", "tracr-reverse", "--device", "cuda")
    assert result.returncode == 2 and "it has cpu" in result.stderr


def test_threads_default_to_one_on_a_small_graph_and_are_put_back(monkeypatch):
    calls = []
    set_threads = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), set_threads(n)))
    before = torch.get_num_threads()
    assert run_edgewise("discover", "tracr-reverse", "--method", "eap").returncode == 0
    assert calls[0] == 1 and calls[-1] == before  # 77 edges: one thread; the caller's count back afterwards
    calls.clear()
    assert run_edgewise("discover", "tracr-reverse", "--method", "eap", "--threads", "2").returncode == 0
    assert calls[0] == 2 and torch.get_num_threads() == before
    assert cli._thread_count(None, 77) == 1 and cli._thread_count(3, 77) == 3
    assert cli._thread_count(None, 10**9) == len(__import__("os").sched_getaffinity(0))


def test_a_bad_metric_is_refused_before_features_and_ablations(tmp_path, monkeypatch):
    task_file = tmp_path / "bad_metric.py"
    task_file.write_text(
        textwrap.dedent(
            """
            import dataclasses

            from edgewise.suite.tasks import get_task
            from edgewise.tasks import Metric


            def agreement(logits, reference, positions):
                same = (logits.argmax(-1) == reference.argmax(-1)).to(logits.dtype)
                return (same * positions).sum((-1, -2)) / positions.sum()


            def make_task():
                return dataclasses.replace(get_task("tracr-reverse"), metric=Metric("agreement", agreement))
            """
        )
    )
    monkeypatch.setattr("edgewise.features.add_trained_features", _must_not_run)
    monkeypatch.setattr("edgewise.patching.task_ablation", _must_not_run)
    result = run_edgewise("discover", f"{task_file}:make_task", "--method", "eap", "--features", "train")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "metric 'agreement' gives 1 on the full model's own outputs" in result.stderr


def test_edgewise_warnings_print_as_one_line_and_others_keep_their_format(monkeypatch):
    def warn(args):
        warnings.simplefilter("always")
        warnings.warn("task card x is damaged;\n  building it again", CacheWarning, stacklevel=1)
        warnings.warn("a library's own warning", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(cli, "_tasks", warn)
    before = warnings.showwarning
    with pytest.warns(UserWarning, match="a library's own warning"):  # passed on to Python's printer (pytest's here)
        result = run_edgewise("tasks")
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert "edgewise: warning: task card x is damaged; building it again" in lines
    assert not any("CacheWarning" in line or "warnings.warn" in line for line in lines)
    assert "edgewise: warning: a library's own warning" not in lines
    assert warnings.showwarning is before


def test_a_damaged_results_file_is_named_not_a_traceback(tmp_path, monkeypatch):
    """bench reads results.json with the checked reader: a wrong entry is named, with exit status 2."""
    from edgewise.suite import bench

    (tmp_path / "results.json").write_text(json.dumps([{"key": 1}]))
    (tmp_path / "families.md").write_text("")
    (tmp_path / "summary.md").write_text("")
    monkeypatch.setattr(bench, "run_bench", lambda *args, **kwargs: [])
    monkeypatch.setattr(bench, "plot_bench", lambda out: None)
    result = run_edgewise("bench", "--out", str(tmp_path), "--tasks", "tracr-shift", "--methods", "random")
    assert result.returncode == 2, result.stderr
    assert f"results file {tmp_path / 'results.json'}, entry 0" in result.stderr and "Traceback" not in result.stderr


def test_a_heads_q_k_and_v_inputs_are_drawn_apart(tmp_path):
    from edgewise.graph import Edge
    from edgewise.report import plot_circuit, plots

    graph = get_task("tracr-reverse").graph()
    pos = plots._layout(graph)
    ports = plots._input_ports(graph, pos)
    (qx, qy), (kx, ky), (vx, vy) = (ports["A3.0", kind] for kind in "QKV")
    assert qx < kx < vx and qy == ky == vy < pos["A3.0"][1]  # side by side, below their head
    assert {head for head, _ in ports} == {"A0.0", "A1.0", "A2.0", "A3.0"}
    edges = {Edge("Resid Start", "A3.0.Q"), Edge("Resid Start", "A3.0.V")}
    written = plot_circuit(graph, edges, tmp_path / "c", {Edge("Resid Start", "A3.0.V")})
    assert all(p.stat().st_size > 0 for p in written)


def test_the_demo_draws_its_circuits_against_the_effective_truth(tmp_path, monkeypatch):
    from edgewise.cli import demo
    from edgewise.evaluate import ground_truths

    drawn = {}

    def record(graph, found, path, truth=None, title=""):
        drawn[path.name] = set(truth)
        return []

    monkeypatch.setattr(demo, "plot_circuit", record)
    assert run_edgewise("demo", "--out", str(tmp_path)).returncode == 0
    task = get_task("tracr-reverse")
    graph = task.graph()
    for ablation in ("resample", "zero"):
        effective = ground_truths(task, graph, task_ablation(task, graph, ablation))["effective"]
        assert drawn[f"tracr-reverse-{ablation}-edge-sp-circuit"] == effective
    assert drawn["tracr-reverse-resample-edge-sp-circuit"] != task.ground_truth_edges(graph)  # 2 of the compiler's


def test_a_damaged_run_file_warns_in_one_line_through_the_command_line(tmp_path):
    command = ["bench", "--out", str(tmp_path), "--tasks", "tracr-shift", "--methods", "random", "--no-plots"]
    assert run_edgewise(*command).returncode == 0
    run_file = next((tmp_path / "runs").glob("*.json"))
    run_file.write_text("{not json")
    result = run_edgewise(*command)
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "set aside" in line]
    assert len(warned) == 1 and warned[0].startswith("edgewise: warning: ") and str(run_file) in warned[0]
    assert "BenchFileWarning" not in result.stderr and "warnings.warn" not in result.stderr


def test_bench_refuses_a_device_the_machine_lacks_before_any_work(tmp_path, capsys):
    from edgewise.cli.main import main

    assert main(["bench", "--quick", "--out", str(tmp_path / "b"), "--device", "nonesuch"]) == 2
    assert "nonesuch" in capsys.readouterr().err
    assert not (tmp_path / "b" / "results.json").exists()


def test_a_bench_worker_prints_edgewise_warnings_on_one_line(tmp_path, monkeypatch, capsys):
    import warnings

    from edgewise.errors import CacheWarning
    from edgewise.suite.bench import runner

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    runner._run_group([], tmp_path, jobs=2, threads=1)  # a worker's job, with nothing to run
    warnings.warn_explicit("a damaged  cache entry", CacheWarning, "x.py", 1)
    assert capsys.readouterr().err == "edgewise: warning: a damaged cache entry\n"
