"""`edgewise bench --model DIR --data FILE`: a sweep over the user's own Hugging Face model and prompts file, its
task rebuilt from the folder and file wherever a run happens (this process, a worker process), with the scores a
direct `discover` on `prompt_tasks`' task gives."""

import json

import pytest
from conftest import run_edgewise
from test_prompt_tasks import ROWS, _save, _tokenizer, _write_csv

from edgewise.methods import discover
from edgewise.suite.bench import PromptSource, Sweep, run_bench
from edgewise.tasks import prompt_tasks


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    from transformers import GPT2Config

    tokenizer = _tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=32, bos_token_id=0, eos_token_id=0
    )
    return _save(tmp_path_factory.mktemp("gpt2"), config, tokenizer)


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    return _write_csv(tmp_path_factory.mktemp("data") / "ioi.csv", ROWS)


def _expected_scores(folder, data, method: str) -> list:
    """The method's scores on the discovery rows of a 1/3 split drawn with seed 0, by the library directly."""
    tasks = prompt_tasks(folder, data, held_out=1 / 3, seed=0)
    return discover(tasks.discovery, method, seed=0).to_dict()["scores"]


def test_cli_bench_on_a_model_folder_and_prompts_file(gpt2_folder, data_csv, tmp_path):
    out = tmp_path / "out"
    args = ["--model", str(gpt2_folder), "--data", str(data_csv), "--split", str(1 / 3), "--methods", "eap,random"]
    result = run_edgewise("bench", *args, "--out", str(out), "--no-plots")
    assert result.returncode == 0, result.stderr
    records = json.loads((out / "results.json").read_text())
    assert [(r["task"], r["method"]) for r in records] == [("ioi", "eap"), ("ioi", "random")]
    assert {r["evaluated_on"] for r in records} == {"held-out"} and {r["n_evaluation_inputs"] for r in records} == {2}
    assert {r["n_true_edges"] for r in records} == {None}  # a user's task has no ground truth
    for record in records:
        scores = json.loads((out / "scores" / f"{record['key']}.json").read_text())["scores"]
        assert scores == _expected_scores(gpt2_folder, data_csv, record["method"])


def test_a_worker_process_rebuilds_the_task_from_its_paths(gpt2_folder, data_csv, tmp_path):
    """With --jobs 2 the runs happen in a spawned worker, which builds the task from the folder and file itself."""
    source = PromptSource(str(gpt2_folder), str(data_csv), held_out=1 / 3)
    sweep = Sweep((source.name,), ("eap", "random"), prompts=(source,))
    records = run_bench(sweep, tmp_path / "out", progress=False, jobs=2)
    assert [r.method for r in records] == ["eap", "random"] and {r.jobs for r in records} == {2}
    for record in records:
        scores = json.loads((tmp_path / "out" / "scores" / f"{record.key}.json").read_text())["scores"]
        assert scores == _expected_scores(gpt2_folder, data_csv, record.method)


def test_half_of_model_and_data_or_their_options_alone_are_refused(data_csv, tmp_path):
    result = run_edgewise("bench", "--data", str(data_csv), "--out", str(tmp_path))
    assert result.returncode == 2 and "--model and --data go together" in result.stderr
    result = run_edgewise("bench", "--split", "0.5", "--out", str(tmp_path))
    assert result.returncode == 2 and "use them with --model/--data" in result.stderr
    assert not (tmp_path / "runs").exists()
