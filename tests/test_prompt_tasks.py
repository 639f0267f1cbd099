"""Tasks from a model folder and a file of prompt pairs (edgewise.tasks.prompt_task), on tiny random GPT-2 and Llama
models saved with a byte-level BPE tokenizer trained here.

References are independent of edgewise: the tokenizer's own encoding of each row, and the plain Hugging Face model's
logits on each unpadded prompt.
"""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from edgewise.errors import (
    InvalidHyperparameterError,
    ModelFolderError,
    PromptDataError,
    PromptTokensError,
    UnknownMetricError,
)
from edgewise.methods import discover
from edgewise.patching import full_logits
from edgewise.tasks import PromptColumns, answer_logit_difference, prompt_task, prompt_tasks

NAMES = ("Mary", "John", "Tom", "Anna", "Lisa", "Mark")
TEMPLATES = (
    "When {A} and {B} went to the store, {B} gave a drink to",
    "{A} and {B} met; {B} waved to",
    "After {A} and {B} had lunch at the big old park near the river, {B} gave a book to",
)
# Each row: the IO answer, the subject as wrong answer; the corrupted prompt names a third person (ABC). The
# templates differ in length, so the batch is padded.
ROWS = [
    {
        "clean": TEMPLATES[i % 3].format(A=a, B=b),
        "corrupted": TEMPLATES[i % 3].format(A=a, B=b).replace(f", {b} ", f", {c} ").replace(f"; {b} ", f"; {c} "),
        "answer": a,
        "wrong_answer": b,
    }
    for i, (a, b, c) in enumerate(
        [("Mary", "John", "Tom"), ("Anna", "Lisa", "Mark"), ("Tom", "Mary", "Anna"), ("Lisa", "Mark", "John")]
        + [("John", "Anna", "Mary"), ("Mark", "Tom", "Lisa")]
    )
]


def _tokenizer():
    """Returns a byte-level BPE tokenizer (GPT-2's kind) trained on the templates: every name is one token after a
    space, and an unseen word (" Zebedee") is several."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [t.format(A=a, B=b) + f" {a}" for t in TEMPLATES for a in NAMES for b in NAMES if a != b] * 2
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=360, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def _save(folder, config, tokenizer):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # Hugging Face initialises biases and norms to 0 and 1: make a wrong one visible
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "ln" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tokenizer():
    return _tokenizer()


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory, tokenizer):
    from transformers import GPT2Config

    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=32, bos_token_id=0, eos_token_id=0
    )
    return _save(tmp_path_factory.mktemp("gpt2"), config, tokenizer)


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory, tokenizer):
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=0,
        eos_token_id=0,
    )
    return _save(tmp_path_factory.mktemp("llama"), config, tokenizer)


def _write_csv(path, rows, fieldnames=None):
    fieldnames = fieldnames or list(rows[0])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    return _write_csv(tmp_path_factory.mktemp("data") / "ioi.csv", ROWS)


@pytest.fixture(scope="module")
def gpt2_task(gpt2_folder, data_csv):
    return prompt_task(gpt2_folder, data_csv, "logit-diff")  # loaded from the folder, as the command line does


@pytest.fixture
def no_loading(monkeypatch):
    """Makes loading any model's weights fail: an error raised with it on was raised before loading."""

    def boot(folder):
        raise AssertionError(f"the model {folder} was loaded before the bad input was found")

    monkeypatch.setattr("edgewise.tasks.prompts.boot_bridge", boot)


def _hf_model(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).eval()


def _one_token(tokenizer, word):
    ids = tokenizer(" " + word, add_special_tokens=False).input_ids
    assert len(ids) == 1, (word, ids)
    return ids[0]


# ------------------------------------------------------------------------------------------------------ the encoding


def test_token_ids_are_the_tokenizers_encoding_right_padded(gpt2_task, tokenizer):
    pad = tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id
    lengths = set()
    for i, row in enumerate(ROWS):
        clean, corrupted = tokenizer(row["clean"]).input_ids, tokenizer(row["corrupted"]).input_ids
        lengths.add(len(clean))
        assert gpt2_task.clean[i, : len(clean)].tolist() == clean
        assert gpt2_task.corrupt[i, : len(corrupted)].tolist() == corrupted
        assert (gpt2_task.clean[i, len(clean) :] == pad).all()
        assert gpt2_task.scored_positions[i].nonzero().flatten().tolist() == [len(clean) - 1]
    assert len(lengths) == 3 and gpt2_task.clean.shape == (len(ROWS), max(lengths))  # the rows really were padded


def test_answer_ids_are_the_tokenizers(gpt2_task, tokenizer):
    for i, row in enumerate(ROWS):
        right, wrong = _one_token(tokenizer, row["answer"]), _one_token(tokenizer, row["wrong_answer"])
        assert gpt2_task.family.answer_ids[i].tolist() == [right, wrong]
        scored = gpt2_task.scored_positions[i]
        assert gpt2_task.answers[i, scored].tolist() == [right]
        assert (gpt2_task.answers[i, ~scored] == -1).all()


def test_logit_difference_on_the_full_model_matches_hugging_face(gpt2_task, gpt2_folder, tokenizer):
    hf = _hf_model(gpt2_folder)
    expected = []
    with torch.no_grad():
        for row in ROWS:
            last = hf(torch.tensor([tokenizer(row["clean"]).input_ids])).logits[0, -1]
            expected.append(
                last[_one_token(tokenizer, row["answer"])] - last[_one_token(tokenizer, row["wrong_answer"])]
            )
    expected = torch.stack(expected)
    full = full_logits(gpt2_task)
    assert torch.allclose(answer_logit_difference(gpt2_task, full), expected, atol=1e-4)
    # The metric is the logit difference lost: none on the full model, all of it on logits that tie every token.
    assert gpt2_task.metric.name == "logit-diff"
    gpt2_task.check_metric()
    lost_by_ties = gpt2_task.metric(torch.zeros_like(full), full, gpt2_task.scored_positions)
    assert torch.allclose(lost_by_ties, expected.mean(), atol=1e-4)


def test_prob_metric_is_the_answer_probability_lost(gpt2_task, gpt2_folder, tokenizer, data_csv):
    task = prompt_task(gpt2_task.model, data_csv, "prob", tokenizer=tokenizer)
    hf = _hf_model(gpt2_folder)
    with torch.no_grad():
        probabilities = torch.stack(
            [
                hf(torch.tensor([tokenizer(row["clean"]).input_ids]))
                .logits[0, -1]
                .softmax(-1)[_one_token(tokenizer, row["answer"])]
                for row in ROWS
            ]
        )
    full = full_logits(task)
    task.check_metric()
    uniform = task.metric(torch.zeros_like(full), full, task.scored_positions)  # p = 1 / vocab for every token
    assert torch.allclose(uniform, (probabilities - 1 / full.shape[-1]).mean(), atol=1e-5)
    assert set(task.objectives) == {"prob", "logit-diff"}


def test_eap_runs_end_to_end_on_the_task_graph(gpt2_task):
    graph = gpt2_task.graph()
    scores = discover(gpt2_task, "eap", graph=graph)
    assert scores.graph is graph and scores.scores.shape == (graph.n_edges,)
    assert torch.isfinite(scores.scores).all() and scores.scores.abs().sum() > 0
    # The signed metric has a gradient at the full model, so EAP can follow the logit difference itself.
    by_metric = discover(gpt2_task, "eap", graph=graph, objective="metric")
    assert by_metric.scores.abs().sum() > 0 and not torch.allclose(by_metric.scores, scores.scores)


def test_llama_folder_with_bos_and_a_jsonl_file(llama_folder, tokenizer, tmp_path):
    data = _write_jsonl(tmp_path / "ioi.jsonl", ROWS)
    task = prompt_task(llama_folder, data, "logit-diff", prepend_bos=True)
    bos = tokenizer.bos_token_id
    hf = _hf_model(llama_folder)
    expected = []
    for i, row in enumerate(ROWS):
        clean = [bos, *tokenizer(row["clean"], add_special_tokens=False).input_ids]
        assert task.clean[i, : len(clean)].tolist() == clean
        with torch.no_grad():
            last = hf(torch.tensor([clean])).logits[0, -1]
        expected.append(last[_one_token(tokenizer, row["answer"])] - last[_one_token(tokenizer, row["wrong_answer"])])
    assert task.bos_position == 0
    assert torch.allclose(answer_logit_difference(task, full_logits(task)), torch.stack(expected), atol=1e-4)
    task.check_metric()


def test_renamed_columns_and_kl_without_answers(gpt2_task, tokenizer, tmp_path):
    rows = [{"prompt": r["clean"], "counterfactual": r["corrupted"]} for r in ROWS]
    data = _write_csv(tmp_path / "pairs.csv", rows)
    task = prompt_task(
        gpt2_task.model,
        data,
        "kl",
        columns=PromptColumns(clean="prompt", corrupted="counterfactual"),
        name="mine",
        tokenizer=tokenizer,  # the folder's: a booted bridge's own tokenizer prepends BOS, as TransformerLens does
    )
    assert task.name == "mine" and task.metric.name == "kl" and task.answers is None and task.objectives == {}
    assert torch.equal(task.clean, gpt2_task.clean) and torch.equal(task.corrupt, gpt2_task.corrupt)


def test_answers_written_with_their_space_and_the_objectives(gpt2_task, tokenizer, tmp_path):
    spaced = [{**row, "answer": " " + row["answer"], "wrong_answer": " " + row["wrong_answer"]} for row in ROWS]
    task = prompt_task(gpt2_task.model, _write_jsonl(tmp_path / "spaced.jsonl", spaced), "kl", tokenizer=tokenizer)
    assert torch.equal(task.family.answer_ids, gpt2_task.family.answer_ids)
    assert torch.equal(task.answers, gpt2_task.answers) and task.metric.name == "kl"
    # An answer objective replaces the faithfulness metric for a method that minimises one (edge-sp).
    scores = discover(task, "edge-sp", minimise="logit-diff", steps=3, n_samples=1)
    assert scores.hyperparameters["minimise"] == "logit-diff" and torch.isfinite(scores.scores).all()


def test_hub_name_is_loaded_through_the_hub_and_boot_bridge(gpt2_task, gpt2_folder, data_csv, monkeypatch):
    import transformers

    asked, booted = [], []
    for auto in (transformers.AutoConfig, transformers.AutoTokenizer):  # a hub "cache" holding one model
        load = auto.from_pretrained

        def from_hub(name, *args, _load=load, **kwargs):
            asked.append(name)
            if name != "tiny-org/tiny-gpt2":
                raise OSError(f"{name} is not a model on the hub")
            return _load(gpt2_folder, *args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", from_hub)

    def boot(folder):
        booted.append(str(folder))
        return gpt2_task.model

    monkeypatch.setattr("edgewise.tasks.prompts.boot_bridge", boot)
    task = prompt_task("tiny-org/tiny-gpt2", data_csv)
    assert booted == ["tiny-org/tiny-gpt2"] and asked[0] == "tiny-org/tiny-gpt2"
    assert torch.equal(task.clean, gpt2_task.clean)
    with pytest.raises(ModelFolderError, match=r"'no-org/none' is neither a model folder here nor .* hub"):
        prompt_task("no-org/none", data_csv)
    assert booted == ["tiny-org/tiny-gpt2"]


# ------------------------------------------------------------------------------------------------------- the split


def test_held_out_fraction_splits_the_rows(gpt2_task, tokenizer, data_csv):
    tasks = prompt_tasks(gpt2_task.model, data_csv, held_out=0.5, seed=3, tokenizer=tokenizer)
    discovery, held_out = tasks.discovery.family.rows, tasks.held_out.family.rows
    assert len(discovery) == len(held_out) == 3
    lines = [r.line for r in discovery] + [r.line for r in held_out]
    assert sorted(lines) == list(range(2, 2 + len(ROWS)))  # every row once (line 1 is the header)
    for task in (tasks.discovery, tasks.held_out):
        for i, row in enumerate(task.family.rows):
            ids = tokenizer(row.clean).input_ids
            assert task.clean[i, : len(ids)].tolist() == ids
    again = prompt_tasks(gpt2_task.model, data_csv, held_out=0.5, seed=3)
    assert [r.line for r in again.held_out.family.rows] == [r.line for r in held_out]
    assert prompt_tasks(gpt2_task.model, data_csv).held_out is None


def test_held_out_column(gpt2_task, tmp_path):
    rows = [{**row, "split": "held-out" if i % 3 == 0 else "discovery"} for i, row in enumerate(ROWS)]
    tasks = prompt_tasks(gpt2_task.model, _write_csv(tmp_path / "split.csv", rows), held_out="split")
    assert [r.clean for r in tasks.held_out.family.rows] == [ROWS[0]["clean"], ROWS[3]["clean"]]
    assert len(tasks.discovery.family.rows) == 4


# ------------------------------------------------------------------------------------------------------- bad input


def test_folder_that_is_not_a_model(no_loading, tmp_path, data_csv, gpt2_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFolderError, match=r"no config.json.*save_pretrained"):
        prompt_task(empty, data_csv)
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    (config_only / "config.json").write_text((gpt2_folder / "config.json").read_text())
    with pytest.raises(ModelFolderError, match="no weights"):
        prompt_task(config_only, data_csv)
    with pytest.raises(ModelFolderError, match="is a file"):
        prompt_task(data_csv, data_csv)
    with pytest.raises(ModelFolderError, match="no such folder"):
        prompt_task(tmp_path / "missing" / "model", data_csv)


def test_model_folder_without_a_tokenizer(no_loading, tmp_path, data_csv, gpt2_folder):
    folder = tmp_path / "no_tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((gpt2_folder / name).read_bytes())
    with pytest.raises(ModelFolderError, match="no tokenizer"):
        prompt_task(folder, data_csv)


def test_missing_columns_name_the_file_and_the_fix(no_loading, tmp_path, gpt2_folder):
    row = ROWS[0]
    renamed = [{"clean": row["clean"], "corrupted": row["corrupted"], "answer": row["answer"], "wrong": "John"}]
    data = _write_csv(tmp_path / "renamed.csv", renamed)
    with pytest.raises(PromptDataError, match=r"renamed.csv: no column 'wrong_answer'.*Did you mean 'wrong'"):
        prompt_task(gpt2_folder, data)
    # the prob metric needs no wrong answer, but still the answer:
    no_answer = _write_csv(tmp_path / "no_answer.csv", [{"clean": "a", "corrupted": "b"}])
    with pytest.raises(PromptDataError, match=r"no column 'answer'.*PromptColumns\(answer="):
        prompt_task(gpt2_folder, no_answer, "prob")
    data = tmp_path / "gap.jsonl"
    _write_jsonl(data, [ROWS[0], {k: v for k, v in ROWS[1].items() if k != "corrupted"}])
    with pytest.raises(PromptDataError, match=r"gap.jsonl, line 2: no column 'corrupted'"):
        prompt_task(gpt2_folder, data)
    blank = _write_csv(tmp_path / "blank.csv", [{**ROWS[0], "answer": ""}])
    with pytest.raises(PromptDataError, match=r"blank.csv, line 2: column 'answer' holds ''"):
        prompt_task(gpt2_folder, blank)


def test_empty_files(no_loading, tmp_path, gpt2_folder):
    for name, text in (("empty.csv", ""), ("header.csv", "clean,corrupted,answer,wrong_answer\n"), ("e.jsonl", "\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(PromptDataError, match=rf"{name} holds no prompt pairs"):
            prompt_task(gpt2_folder, tmp_path / name)
    with pytest.raises(PromptDataError, match="no such file"):
        prompt_task(gpt2_folder, tmp_path / "missing.csv")
    (tmp_path / "pairs.txt").write_text("x")
    with pytest.raises(PromptDataError, match=r"unknown prompt-pairs format '.txt'"):
        prompt_task(gpt2_folder, tmp_path / "pairs.txt")


def test_answer_of_several_tokens(no_loading, tmp_path, gpt2_folder):
    rows = [ROWS[0], {**ROWS[1], "answer": "Zebedee"}]
    with pytest.raises(PromptTokensError, match=r"line 3: answer 'Zebedee' is \d+ tokens.*one token"):
        prompt_task(gpt2_folder, _write_csv(tmp_path / "long_answer.csv", rows))
    same = [{**ROWS[0], "wrong_answer": ROWS[0]["answer"]}]
    with pytest.raises(PromptTokensError, match="the same token"):
        prompt_task(gpt2_folder, _write_csv(tmp_path / "same.csv", same))


def test_pair_of_unequal_lengths(no_loading, tmp_path, gpt2_folder):
    rows = [ROWS[0], ROWS[1], {**ROWS[2], "corrupted": ROWS[2]["corrupted"].replace("Anna", "Zebedee")}]
    with pytest.raises(PromptTokensError, match=r"unequal.csv, line 4: the clean prompt is \d+ tokens.*one length"):
        prompt_task(gpt2_folder, _write_csv(tmp_path / "unequal.csv", rows))


def test_prompt_longer_than_the_context(no_loading, tmp_path, gpt2_folder):
    long = {key: " ".join([value] * 4) if key in ("clean", "corrupted") else value for key, value in ROWS[2].items()}
    data = _write_csv(tmp_path / "long.csv", [ROWS[0], long])
    with pytest.raises(PromptTokensError, match=r"line 3: the prompts are \d+ tokens, longer than the model's context"):
        prompt_task(gpt2_folder, data)


def test_prompt_longer_than_a_booted_models_context(gpt2_task, tokenizer, tmp_path):
    long = {key: " ".join([value] * 4) if key in ("clean", "corrupted") else value for key, value in ROWS[2].items()}
    data = _write_csv(tmp_path / "long.csv", [long])
    with pytest.raises(PromptTokensError, match=r"line 2: .* context of 32 tokens"):
        prompt_task(gpt2_task.model, data, tokenizer=tokenizer)


def test_bad_metric_split_and_fraction(no_loading, tmp_path, gpt2_folder, data_csv):
    with pytest.raises(UnknownMetricError, match="Did you mean 'logit-diff'"):
        prompt_task(gpt2_folder, data_csv, "logit_diff")
    with pytest.raises(InvalidHyperparameterError, match=r"held_out=1.0"):
        prompt_task(gpt2_folder, data_csv, held_out=1.0)
    rows = [{**row, "split": "test"} for row in ROWS]
    with pytest.raises(PromptDataError, match=r"line 2: split column 'split' holds 'test'"):
        prompt_task(gpt2_folder, _write_csv(tmp_path / "split.csv", rows), held_out="split")
    with pytest.raises(PromptDataError, match=r"no column 'part' \(the split\).*Did you mean 'parts'.*held_out=NAME"):
        prompt_task(
            gpt2_folder, _write_csv(tmp_path / "parts.csv", [{**ROWS[0], "parts": "discovery"}]), held_out="part"
        )
    rows = [{**row, "split": "held-out"} for row in ROWS]
    with pytest.raises(PromptDataError, match="none of its 6 rows for discovery"):
        prompt_task(gpt2_folder, _write_csv(tmp_path / "all_held.csv", rows), held_out="split")


def test_discover_from_a_model_folder_and_a_prompts_file_on_the_command_line(gpt2_folder, data_csv, tmp_path, capsys):
    from edgewise.cli.main import main
    from edgewise.graph import EdgeScores

    out = tmp_path / "scores.json"
    argv = ["discover", "--model", str(gpt2_folder), "--data", str(data_csv), "--method", "eap", "--json", str(out)]
    assert main([*argv, "--split", "0.34", "--held-out", "--show", "3"]) == 0
    printed = capsys.readouterr().out
    assert "scored on the held-out inputs (2 examples" in printed and "fitted on the 4 discovery inputs" in printed
    scores = EdgeScores.load(out)
    direct = discover(prompt_tasks(gpt2_folder, data_csv, held_out=0.34).discovery, "eap", objective="metric")
    assert torch.allclose(scores.scores, direct.scores)  # answer metrics: attribution follows the file's answers


@pytest.mark.parametrize(
    "extra, message",
    [
        (["tracr-reverse", "--model", "m", "--data", "d"], "not both"),
        (["--model", "m"], "go together"),
        (["tracr-reverse", "--metric", "logit-diff"], "needs the answers of a prompts file"),
        (["tracr-reverse", "--split", "0.5"], "use them with --model/--data"),
        ([], "give a TASK"),
    ],
)
def test_bad_prompt_options_are_refused_before_any_work(extra, message, capsys, monkeypatch):
    import sys

    from edgewise.cli.main import main

    cli = sys.modules["edgewise.cli.main"]  # the package face's `main` is the function
    monkeypatch.setattr(cli, "_load_task", lambda *a, **k: pytest.fail("a task was loaded"))
    assert main(["discover", *extra]) == 2
    assert message in capsys.readouterr().err


def test_check_and_graph_take_a_model_folder_and_a_prompts_file(gpt2_folder, data_csv, capsys):
    from edgewise.cli.main import main

    assert main(["check", "--model", str(gpt2_folder), "--data", str(data_csv)]) == 0
    assert "FAIL" not in capsys.readouterr().out
    assert main(["graph", "--model", str(gpt2_folder), "--data", str(data_csv)]) == 0
    graph = prompt_task(gpt2_folder, data_csv).graph()
    assert f"{graph.n_edges} edges" in capsys.readouterr().out


def test_diagnose_takes_a_model_folder_a_prompts_file_and_a_circuit_found_on_them(
    gpt2_folder, data_csv, tmp_path, capsys
):
    from edgewise.cli.main import main

    circuit = tmp_path / "circuit.json"
    source = ["--model", str(gpt2_folder), "--data", str(data_csv)]
    assert main(["discover", *source, "--method", "eap", "--top-k", "30", "--circuit-out", str(circuit)]) == 0
    capsys.readouterr()
    assert main(["diagnose", *source, "--circuit", str(circuit), "--ablations", "resample,zero"]) == 0
    report = capsys.readouterr().out
    assert "faithfulness of the" in report and "per input" in report and "== zero ablation" in report


def test_bootstrap_rows_and_per_input_faithfulness_keep_a_prompt_tasks_answers_aligned(
    gpt2_task, gpt2_folder, tmp_path
):
    from edgewise.evaluate import faithfulness, per_example_faithfulness, resampled_rows
    from edgewise.patching import task_ablation

    task = gpt2_task
    n = task.clean.shape[0]
    resample = resampled_rows(task, torch.Generator().manual_seed(1))
    rows = torch.randint(0, n, (n,), generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    logits, reference = (
        torch.randn(*task.clean.shape, 360, generator=g),
        torch.randn(*task.clean.shape, 360, generator=g),
    )
    ids = task.family.answer_ids[rows]  # (answer, wrong) per drawn row
    last = resample.scored_positions.float().argmax(1)
    by_hand = torch.stack(
        [
            (reference[j, last[j], ids[j, 0]] - reference[j, last[j], ids[j, 1]])
            - (logits[j, last[j], ids[j, 0]] - logits[j, last[j], ids[j, 1]])
            for j in range(n)
        ]
    ).mean()
    assert resample.metric(logits, reference, resample.scored_positions).item() == pytest.approx(
        by_hand.item(), rel=1e-5
    )
    # each input's faithfulness equals the faithfulness of a task of that row alone (its own file)
    graph = task.graph()
    edges = set(graph.edges[: graph.n_edges // 3])
    values = per_example_faithfulness(task, graph, task_ablation(task, graph, "resample"), edges).values
    defined = 0
    for i in range(n):  # an input whose empty circuit loses no logit difference has none (NaN) on both sides
        one = prompt_task(gpt2_folder, _write_csv(tmp_path / f"row{i}.csv", [ROWS[i]]))
        expected = faithfulness(one, graph, task_ablation(one, graph, "resample"), edges)
        assert values[i].item() == pytest.approx(expected, abs=1e-4, nan_ok=True)
        defined += expected == expected
    assert defined >= 2


# ------------------------------------------------------------------------------------- remove on a prompts file


def _hand_removed_mlp1(folder, tokenizer, rows):
    """Returns, by plain torch hooks on the Hugging Face GPT-2, each row's logit difference and whether its top token
    is the answer at its last prompt token, full and with the one edge `MLP 1 -> Resid End` zero-ablated: the final
    norm's input loses MLP 1's output (each row run alone, unpadded)."""
    hf = _hf_model(folder)
    mlp, final = hf.transformer.h[1].mlp, hf.transformer.ln_f
    full, removed = [], []
    with torch.no_grad():
        for row in rows:
            answer, wrong = _one_token(tokenizer, row["answer"]), _one_token(tokenizer, row["wrong_answer"])
            outputs = []
            handle = mlp.register_forward_hook(lambda m, i, o: outputs.append(o))
            clean = torch.tensor([tokenizer(row["clean"]).input_ids])
            last = hf(clean).logits[0, -1]
            patch = final.register_forward_pre_hook(lambda m, args: (args[0] - outputs[-1],))
            patched = hf(clean).logits[0, -1]
            handle.remove()
            patch.remove()
            for logits, into in ((last, full), (patched, removed)):
                into.append(((logits[answer] - logits[wrong]).item(), logits.argmax().item() == answer))
    return full, removed


def test_remove_takes_a_model_folder_prompts_files_and_a_circuit(gpt2_folder, tokenizer, tmp_path, capsys):
    """`edgewise remove --model DIR --data FILE`: the circuit (one edge) is removed on the file's held-out rows and on
    a retain file's; every number agrees with the same edge patched by hand on the plain Hugging Face model."""
    from edgewise.cli.main import main
    from edgewise.graph import Circuit, Edge

    split = ["held-out", "discovery", "held-out", "discovery", "held-out", "discovery"]
    forget = _write_csv(tmp_path / "ioi.csv", [{**row, "part": part} for row, part in zip(ROWS, split)])
    kept = [{**row, "part": part} for row, part in zip(ROWS[3:], ["held-out", "held-out", "discovery"])]
    retain = _write_csv(tmp_path / "keep.csv", kept)
    circuit_file = tmp_path / "circuit.json"
    Circuit(frozenset({Edge("MLP 1", "Resid End")}), description="by hand", task="ioi").save(circuit_file)
    out = tmp_path / "removal.json"
    argv = ["remove", "--model", str(gpt2_folder), "--data", str(forget), "--split", "part", "--ablation", "zero"]
    argv += ["--retain-data", str(retain), "--circuit", str(circuit_file), "--random-seeds", "0", "--json", str(out)]
    assert main(argv) == 0
    assert "removing from ioi (zero ablation), measured on held-out inputs" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["retain"] == ["keep"]
    (row,) = record["removals"]
    for measure, rows in (
        (row["forget"], [r for r, p in zip(ROWS, split) if p == "held-out"]),
        (row["retain"][0], kept[:2]),
    ):
        full, removed = _hand_removed_mlp1(gpt2_folder, tokenizer, rows)
        lost = sum(f[0] - r[0] for f, r in zip(full, removed)) / len(rows)
        assert measure["metric"] == pytest.approx(lost, abs=1e-4)
        assert measure["accuracy_before"] == pytest.approx(sum(f[1] for f in full) / len(rows))
        assert measure["accuracy_after"] == pytest.approx(sum(r[1] for r in removed) / len(rows))
    assert abs(lost) > 1e-3  # the edge matters, so the comparison above tests something


def test_a_prompts_files_removal_split_in_python(gpt2_task, gpt2_folder, data_csv):
    """TaskSplit.from_prompt_tasks: held-out rows are measured where the file was split, else the discovery rows."""
    from edgewise.interventions import TaskSplit

    split = TaskSplit.from_prompt_tasks(
        prompt_tasks(gpt2_task.adapter, data_csv, held_out=0.34, tokenizer=gpt2_task.family.tokenizer)
    )
    assert split.held_out and split.evaluation is not split.discovery
    held = {row.line for row in split.evaluation.family.rows}
    assert held and held.isdisjoint(row.line for row in split.discovery.family.rows)
    whole = TaskSplit.from_prompt_tasks(prompt_tasks(gpt2_task.adapter, data_csv, tokenizer=gpt2_task.family.tokenizer))
    assert not whole.held_out and whole.evaluation is whole.discovery and len(whole.discovery.family.rows) == len(ROWS)


def test_remove_writes_an_undefined_circuit_faithfulness_as_null(gpt2_folder, data_csv, tmp_path):
    """A signed metric can make the empty circuit lose nothing or less than nothing, so the circuit's faithfulness is
    undefined (NaN): the JSON holds null there, not a crash on NaN."""
    from edgewise.cli.main import main
    from edgewise.evaluate import circuits_faithfulness
    from edgewise.graph import Circuit, Edge
    from edgewise.patching import task_ablation

    edges = {Edge("MLP 1", "Resid End")}
    Circuit(frozenset(edges), task="ioi").save(tmp_path / "c.json")
    task = prompt_task(gpt2_folder, data_csv)
    graph = task.graph()
    (expected,) = circuits_faithfulness(task, graph, task_ablation(task, graph, "resample"), [edges])
    out = tmp_path / "removal.json"
    argv = ["remove", "--model", str(gpt2_folder), "--data", str(data_csv), "--circuit", str(tmp_path / "c.json")]
    assert main([*argv, "--random-seeds", "0", "--json", str(out)]) == 0
    written = json.loads(out.read_text())["removals"][0]["circuit_faithfulness"]
    assert written is None if math.isnan(expected) else written == pytest.approx(expected)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--retain", "tracr-reverse"], "built-in tasks run their own models"),
        (["--retain-data", "{data}"], "cannot be both removed and kept"),
        (["--retain-data", "{other}/ioi.csv"], "two files called ioi"),
        (["--retain-data", "{other}/missing.csv"], "missing.csv"),
        (["--circuit", "{circuit}"], "found on task 'tracr-reverse', not 'ioi'"),
    ],
)
def test_remove_refuses_what_a_prompts_file_cannot_supply_before_loading(
    extra, message, gpt2_folder, data_csv, no_loading, tmp_path, capsys
):
    from edgewise.cli.main import main
    from edgewise.graph import Circuit, Edge

    circuit = tmp_path / "c.json"
    Circuit(frozenset({Edge("MLP 1", "Resid End")}), task="tracr-reverse").save(circuit)
    (tmp_path / "ioi.csv").write_text(data_csv.read_text())
    fill = {"data": str(data_csv), "other": str(tmp_path), "circuit": str(circuit)}
    extra = [item.format(**fill) for item in extra]
    source = ["--circuit", str(circuit)] if "--circuit" not in extra else []
    assert main(["remove", "--model", str(gpt2_folder), "--data", str(data_csv), *source, *extra]) == 2
    assert message in capsys.readouterr().err


def test_remove_refuses_prompt_options_on_a_built_in_task(capsys):
    from edgewise.cli.main import main

    assert main(["remove", "tracr-reverse", "--method", "eap", "--retain-data", "x.csv"]) == 2
    assert "--retain-data describes prompts files on your own model" in capsys.readouterr().err
