"""Inputs refused before any work, each with an error that names what is wrong and the fix: SAELens folders whose
weights are not finite, whose cfg.json fields have the wrong types or ranges, whose head is not one of the hook's, or
two of which split one writer; a task metric that is not a Metric, or is not 0 on the full model; an unknown metric
name. Each case is built for real: SAE folders are written to disk as SAELens does, tasks run tracr's built-in
models. Valid folders and tasks are still accepted."""

import dataclasses
import json

import pytest
import torch
from conftest import run_edgewise
from safetensors.torch import save_file

import edgewise.features.sets
import edgewise.methods.discovery
from edgewise.errors import (
    DuplicateSAEError,
    InvalidHyperparameterError,
    InvalidMetricError,
    MetricNotZeroError,
    NonFiniteSAEWeightsError,
    SAEConfigError,
    SAEFormatError,
    SAEHookError,
    UnknownMetricError,
)
from edgewise.features import SAETrainingConfig, add_sae_features, cached_sparse_autoencoder, load_saelens
from edgewise.methods import METHODS, discover, get_method, method_names
from edgewise.tasks import METRIC_ZERO_TOLERANCE, METRICS, Metric, Task, kl_divergence

D_IN, D_SAE = 5, 8
NAN, INF = float("nan"), float("inf")


def saelens_cfg(d_in=D_IN, d_sae=D_SAE, hook="blocks.0.hook_mlp_out", head=None, **fields) -> dict:
    """Returns a standard SAE's cfg.json in SAELens 6's layout; `fields` replace top-level fields."""
    metadata = {"sae_lens_version": "6.18.0", "model_name": "tracr", "hook_name": hook, "hook_head_index": head}
    cfg = {
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": metadata,
        "architecture": "standard",
    }
    return cfg | fields


def sae_weights(d_in=D_IN, d_sae=D_SAE, seed=0, **changes) -> dict[str, torch.Tensor]:
    """Returns random SAELens weights [d_in, d_sae] ..., with `changes` replacing tensors by name."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    return {name: torch.randn(*shape, generator=g) for name, shape in shapes.items()} | changes


def write_sae(folder, cfg=None, weights=None):
    """Writes a SAELens folder (cfg.json and sae_weights.safetensors) and returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(saelens_cfg() if cfg is None else cfg))
    save_file(sae_weights() if weights is None else weights, folder / "sae_weights.safetensors")
    return folder


def with_entries(tensor: torch.Tensor, value: float, n: int) -> torch.Tensor:
    """Returns a copy of `tensor` whose first `n` entries (in memory order) are `value`."""
    changed = tensor.clone()
    changed.view(-1)[:n] = value
    return changed


def writer_sae(task, folder, hook="blocks.0.hook_mlp_out", head=None, **cfg_fields):
    """Writes an SAE folder for one writer of `task` (d_in its model's width) and returns the folder."""
    width = task.model.cfg.d_model
    return write_sae(folder, saelens_cfg(width, 4, hook, head, **cfg_fields), sae_weights(width, 4))


@pytest.fixture
def sae_task(reverse):
    """tracr-reverse with its own dictionaries dict, so sets added by a test do not reach other tests."""
    return dataclasses.replace(reverse, dictionaries=dict(reverse.dictionaries))


@pytest.fixture
def no_forward(monkeypatch):
    """Makes the writer outputs (the forward add_sae_features runs) fail the test, to prove a check came first."""

    def must_not_run(task):
        raise AssertionError("the model ran although the folders should have been refused first")

    monkeypatch.setattr(edgewise.features.sets, "writer_outputs", must_not_run)


# ---------------------------------------------------------------------------------------------------------------
# SAE folders: weights


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"W_dec": with_entries(sae_weights()["W_dec"], NAN, 2)}, r"W_dec has 2 of 40 entries NaN or infinite"),
        ({"b_enc": with_entries(sae_weights()["b_enc"], INF, 1)}, r"b_enc has 1 of 8 entries NaN or infinite"),
        ({"b_dec": with_entries(sae_weights()["b_dec"], -INF, 5)}, r"b_dec has 5 of 5 entries NaN or infinite"),
        (
            {"W_enc": torch.full((D_IN, D_SAE), NAN), "b_dec": with_entries(sae_weights()["b_dec"], NAN, 1)},
            r"W_enc has 40 of 40 entries NaN or infinite; b_dec has 1 of 5 entries",
        ),
    ],
    ids=["nan-decoder", "inf-encoder-bias", "minus-inf-decoder-bias", "all-nan-encoder"],
)
def test_non_finite_weights_are_refused_naming_each_tensor_and_count(tmp_path, changes, match):
    folder = write_sae(tmp_path / "sae", weights=sae_weights(**changes))
    with pytest.raises(NonFiniteSAEWeightsError, match=match) as raised:
        load_saelens(folder)
    assert str(folder) in str(raised.value) and "finite checkpoint" in str(raised.value)
    assert isinstance(raised.value, SAEFormatError)  # callers that catch SAE folder errors catch it too


def test_weights_finite_in_the_file_but_beyond_the_cfgs_dtype_are_refused(tmp_path):
    weights = sae_weights(W_dec=with_entries(sae_weights()["W_dec"], 1e6, 3))  # float16 holds at most 65504
    folder = write_sae(tmp_path / "sae", saelens_cfg(dtype="float16"), weights)
    with pytest.raises(NonFiniteSAEWeightsError, match=r"W_dec has 3 of 40 .*finite in the file, beyond torch.float16"):
        load_saelens(folder)


def test_an_all_nan_encoder_is_refused_before_it_becomes_a_writer_without_features(sae_task, tmp_path):
    """The probe's case: an encoder of NaN activates no feature, so the writer silently kept only its error node."""
    folder = writer_sae(sae_task, tmp_path / "sae")
    d_model = sae_task.model.cfg.d_model
    save_file(sae_weights(d_model, 4, W_enc=torch.full((d_model, 4), NAN)), folder / "sae_weights.safetensors")
    with pytest.raises(NonFiniteSAEWeightsError, match=rf"W_enc has {d_model * 4} of {d_model * 4} entries"):
        add_sae_features(sae_task, folder)
    assert not any(name.startswith("sae:") for name in sae_task.dictionaries)


# ---------------------------------------------------------------------------------------------------------------
# SAE folders: cfg.json fields


@pytest.mark.parametrize(
    "cfg,match",
    [
        (saelens_cfg(d_in="5"), r"d_in must be an integer >= 1, got '5'"),
        (saelens_cfg(d_sae=0), r"d_sae must be an integer >= 1, got 0"),
        (saelens_cfg(d_sae=True), r"d_sae must be an integer >= 1, got True"),
        (saelens_cfg(d_in=5.0), r"d_in must be an integer >= 1, got 5.0"),
        (saelens_cfg(dtype=["float32"]), r"dtype \['float32'\] is not one SAELens writes; supported: "),
        (saelens_cfg(architecture=["standard"]), r"architecture must be a string, got \['standard'\]"),
        (saelens_cfg(apply_b_dec_to_input=1), r"apply_b_dec_to_input must be true or false, got 1"),
        (saelens_cfg(architecture="topk", k="3"), r"a topk SAE needs k, an integer in 1..d_sae=8.*got '3'"),
        (
            saelens_cfg(architecture="topk", k=3, rescale_acts_by_decoder_norm="yes"),
            r"rescale_acts_by_decoder_norm must be true or false, got 'yes'",
        ),
        (saelens_cfg(hook=3), r"hook_name must name the hook the SAE reads .*got 3"),
        (saelens_cfg(head=-1), r"hook_head_index must be the index of one attention head .*got -1"),
        (saelens_cfg(head="0"), r"hook_head_index must be .*or null, got '0'"),
        (saelens_cfg(head=False), r"hook_head_index must be .*got False"),
        (
            saelens_cfg(metadata=["blocks.0.hook_mlp_out"], sae_lens_version="6.0.0"),
            r"metadata must be a JSON object .*got a JSON array: \['blocks.0.hook_mlp_out'\]; write it as "
            r'\{"hook_name"',
        ),
        (saelens_cfg(metadata="blocks.0.hook_mlp_out"), r"metadata must be a JSON object .*got a JSON string"),
        (saelens_cfg(metadata=None), r"metadata must be a JSON object .*got a JSON null"),
    ],
    ids=[
        "d_in-string",
        "d_sae-zero",
        "d_sae-bool",
        "d_in-float",
        "dtype-list",
        "architecture-list",
        "apply_b_dec-int",
        "k-string",
        "rescale-string",
        "hook_name-int",
        "head-negative",
        "head-string",
        "head-bool",
        "metadata-list",
        "metadata-string",
        "metadata-null",
    ],
)
def test_cfg_fields_of_the_wrong_type_or_range_are_refused(tmp_path, cfg, match):
    folder = write_sae(tmp_path / "sae", cfg)
    with pytest.raises(SAEConfigError, match=match) as raised:
        load_saelens(folder)
    assert str(folder / "cfg.json") in str(raised.value)


def test_sizes_that_do_not_match_the_weights_are_refused(tmp_path):
    folder = write_sae(tmp_path / "sae", saelens_cfg(d_sae=9))
    with pytest.raises(SAEFormatError, match=r"W_enc has shape \(5, 8\), but d_in=5 and d_sae=9 .* make it \(5, 9\)"):
        load_saelens(folder)


def test_pre_6_head_index_is_checked_too(tmp_path):
    cfg = saelens_cfg()
    del cfg["metadata"]
    cfg |= {"hook_point": "blocks.0.hook_mlp_out", "hook_point_head_index": 1.5, "activation_fn": "relu"}
    with pytest.raises(SAEConfigError, match=r"hook_head_index must be .*got 1.5"):
        load_saelens(write_sae(tmp_path / "sae", cfg))


# ---------------------------------------------------------------------------------------------------------------
# SAE folders: where they attach to the model


def test_a_head_index_beyond_the_hooks_heads_is_refused_before_the_model_runs(sae_task, tmp_path, no_forward):
    folder = writer_sae(sae_task, tmp_path / "sae", "blocks.1.attn.hook_result", head=1)
    with pytest.raises(SAEHookError, match=r"reads head 1 of blocks.1.attn.hook_result, but that hook has 1 heads"):
        add_sae_features(sae_task, folder)
    with pytest.raises(SAEHookError, match=r"hook_head_index in its cfg.json to one of 0..0"):
        add_sae_features(sae_task, folder)


def test_a_head_index_on_a_hook_without_heads_is_refused(sae_task, tmp_path, no_forward):
    folder = writer_sae(sae_task, tmp_path / "sae", "blocks.0.hook_mlp_out", head=0)
    with pytest.raises(SAEHookError, match=r"at hook_head_index=0, but blocks.0.hook_mlp_out carries one output"):
        add_sae_features(sae_task, folder)


def test_a_per_head_hook_without_a_head_names_the_heads(sae_task, tmp_path, no_forward):
    folder = writer_sae(sae_task, tmp_path / "sae", "blocks.2.attn.hook_result")
    with pytest.raises(SAEHookError, match=r"set hook_head_index in its cfg.json to the head it splits \(0..0\)"):
        add_sae_features(sae_task, folder)


def test_a_width_other_than_the_writers_is_refused(sae_task, tmp_path):
    folder = write_sae(tmp_path / "sae")  # d_in 5: tracr-reverse's writers are wider
    with pytest.raises(SAEHookError, match=rf"reads 5 dimensions, but MLP 0 writes {sae_task.model.cfg.d_model}"):
        add_sae_features(sae_task, folder)


def test_two_saes_for_one_hook_are_refused_naming_both_folders(sae_task, tmp_path, no_forward):
    first = writer_sae(sae_task, tmp_path / "a", "blocks.1.hook_mlp_out")
    second = writer_sae(sae_task, tmp_path / "b", "blocks.1.hook_mlp_out")
    with pytest.raises(DuplicateSAEError, match=r"both split MLP 1 \(hook 'blocks.1.hook_mlp_out'\)") as raised:
        add_sae_features(sae_task, tmp_path)
    message = str(raised.value)
    assert str(first) in message and str(second) in message and "keep one of the two folders" in message
    assert not any(name.startswith("sae:") for name in sae_task.dictionaries)


def test_two_saes_for_one_head_are_refused_and_two_heads_would_not_be(sae_task, tmp_path, no_forward):
    writer_sae(sae_task, tmp_path / "a", "blocks.1.attn.hook_result", head=0)
    writer_sae(sae_task, tmp_path / "b", "blocks.1.attn.hook_result", head=0)
    with pytest.raises(DuplicateSAEError, match=r"both split A1.0 \(hook 'blocks.1.attn.hook_result', head 0\)"):
        add_sae_features(sae_task, tmp_path)


def test_valid_saelens_folders_are_still_accepted(sae_task, tmp_path):
    weights = sae_weights()
    sae, cfg = load_saelens(write_sae(tmp_path / "plain", weights=weights))
    assert torch.equal(sae.W_enc, weights["W_enc"]) and cfg["metadata"]["hook_name"] == "blocks.0.hook_mlp_out"
    writer_sae(sae_task, tmp_path / "set" / "mlp1", "blocks.1.hook_mlp_out")
    writer_sae(sae_task, tmp_path / "set" / "a2", "blocks.2.attn.hook_result", head=0)
    name = add_sae_features(sae_task, tmp_path / "set")
    assert set(sae_task.dictionaries[name]) == {"MLP 1", "A2.0"}


def test_the_command_line_reports_a_bad_sae_folder_and_exits_2(tmp_path):
    """`--features sae:DIR` as a user runs it: the error's message on stderr, no traceback, exit status 2."""
    from conftest import tracr

    width = tracr("tracr-reverse").model.cfg.d_model
    for name in ("a", "b"):
        write_sae(tmp_path / "saes" / name, saelens_cfg(width, 4, "blocks.1.hook_mlp_out"), sae_weights(width, 4))
    result = run_edgewise("discover", "tracr-reverse", "--method", "eap", "--features", f"sae:{tmp_path / 'saes'}")
    assert result.returncode == 2, result.stderr
    assert "both split MLP 1" in result.stderr and "Traceback" not in result.stderr
    save_file(
        sae_weights(width, 4, W_enc=torch.full((width, 4), NAN)), tmp_path / "saes" / "b" / "sae_weights.safetensors"
    )
    result = run_edgewise("discover", "tracr-reverse", "--method", "eap", "--features", f"sae:{tmp_path / 'saes'}")
    assert result.returncode == 2 and "W_enc has 164 of 164 entries NaN or infinite" in result.stderr


def test_sae_training_that_diverges_is_refused_and_not_cached(tmp_path):
    rows = torch.randn(200, 6, generator=torch.Generator().manual_seed(0))
    config = SAETrainingConfig(12, "relu", None, steps=50, lr=1e10)
    with pytest.raises(
        InvalidHyperparameterError, match=r"diverged: after 50 steps at lr=1e\+10 .*\(W_enc 72 of 72, .*lower lr"
    ):
        cached_sparse_autoencoder(rows, config, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    sae = cached_sparse_autoencoder(rows, dataclasses.replace(config, lr=2e-3), cache_dir=tmp_path)
    assert all(bool(torch.isfinite(p).all()) for p in sae.parameters()) and len(list(tmp_path.iterdir())) == 1


# ---------------------------------------------------------------------------------------------------------------
# Task metrics


def my_kl(logits, reference, positions):
    return kl_divergence(logits, reference, positions)


def test_a_plain_function_metric_is_refused_when_the_task_is_built(reverse):
    with pytest.raises(InvalidMetricError, match=r"metric must be an edgewise.tasks.Metric, got function") as raised:
        Task("mine", reverse.model, reverse.clean, reverse.corrupt, my_kl, reverse.scored_positions)
    message = str(raised.value)
    assert "Metric('my_kl', my_kl)" in message and "METRICS[name] for one of kl, mse, l2" in message
    assert isinstance(raised.value, TypeError)
    with pytest.raises(InvalidMetricError, match=r"as Metric\('name', fn\)"):
        dataclasses.replace(reverse, metric=lambda logits, reference, positions: logits.sum())
    with pytest.raises(InvalidMetricError, match=r"got str 'kl'"):
        dataclasses.replace(reverse, metric="kl")


def test_a_plain_function_objective_is_refused_too(reverse):
    with pytest.raises(InvalidMetricError, match=r"task tracr-reverse: objective 'mine' must be an edgewise"):
        dataclasses.replace(reverse, objectives={"mine": my_kl})
    with pytest.raises(InvalidMetricError, match=r"task tracr-reverse: objective must be an edgewise.*Metric\('my_kl'"):
        reverse.with_objective(my_kl)


def test_a_metric_whose_function_is_not_callable_is_refused():
    with pytest.raises(InvalidMetricError, match=r"Metric 'kl': fn must be a function .*got str 'kl'"):
        Metric("kl", "kl")


def test_an_unknown_metric_name_lists_the_known_ones():
    with pytest.raises(
        UnknownMetricError, match=r"unknown metric 'kll'. Did you mean 'kl'\? Known metrics: kl, mse, l2"
    ):
        METRICS["kll"]
    with pytest.raises(KeyError):  # code that caught the plain KeyError still does
        METRICS["cross-entropy"]
    assert METRICS["mse"].name == "mse" and METRICS.get("nope") is None


def agreement(logits, reference, positions):
    """An accuracy-like score, 1 where the top classes agree: not a distance, 1 on the full model."""
    same = (logits.argmax(-1) == reference.argmax(-1)).to(logits.dtype)
    return (same * positions).sum((-1, -2)) / positions.sum()


@pytest.fixture
def nothing_may_run(monkeypatch):
    """Every method, and discover's own masked-forward check, replaced by ones that fail the test if called."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("discovery work ran although the metric should have been refused first")

    for name in method_names():
        monkeypatch.setitem(METHODS, name, dataclasses.replace(get_method(name), run=must_not_run))
    monkeypatch.setattr(edgewise.methods.discovery, "check_metric", must_not_run)
    monkeypatch.setattr(edgewise.methods.discovery, "task_ablation", must_not_run)


@pytest.mark.parametrize("method", ["eap", "edge-sp", "acdc"])
def test_a_metric_not_zero_on_the_full_model_is_refused_before_discovery_works(reverse, method, nothing_may_run):
    task = dataclasses.replace(reverse, metric=Metric("agreement", agreement))
    with pytest.raises(
        MetricNotZeroError, match=r"metric 'agreement' gives 1 on the full model's own outputs"
    ) as raised:
        discover(task, method)
    message = str(raised.value)
    assert "kl, mse, l2" in message and "minimise=Metric(name, fn)" in message


def test_a_metric_off_by_a_constant_is_refused_and_rounding_is_not(reverse):
    def shifted(offset):
        return Metric(
            "shifted", lambda logits, reference, positions: kl_divergence(logits, reference, positions) + offset
        )

    with pytest.raises(MetricNotZeroError, match=r"gives 0.001 on the full model's own outputs"):
        dataclasses.replace(reverse, metric=shifted(1e-3)).check_metric()
    with pytest.raises(MetricNotZeroError, match=r"gives -0.5 on"):
        dataclasses.replace(reverse, metric=shifted(-0.5)).check_metric()
    dataclasses.replace(reverse, metric=shifted(METRIC_ZERO_TOLERANCE / 10)).check_metric()


def test_the_full_model_check_still_applies_with_an_objective(reverse, nothing_may_run):
    """An objective need not be 0 on the full model, but the task's metric, which evaluation uses, must be."""
    task = dataclasses.replace(reverse, metric=Metric("agreement", agreement))
    with pytest.raises(MetricNotZeroError):
        discover(task, "edge-sp", minimise=Metric("kl", kl_divergence))


def test_the_check_costs_one_plain_forward(reverse, monkeypatch):
    calls = []
    adapter_type = type(reverse.adapter)
    forward = adapter_type.forward

    def counting(self, tokens):
        calls.append(tuple(tokens.shape))
        return forward(self, tokens)

    monkeypatch.setattr(adapter_type, "forward", counting)
    reverse.check_metric()
    assert calls == [tuple(reverse.clean.shape)]


def test_valid_tasks_are_still_accepted(reverse):
    task = Task("mine", reverse.model, reverse.clean, reverse.corrupt, METRICS["kl"], reverse.scored_positions)
    for metric in METRICS.values():
        dataclasses.replace(task, metric=metric).check_metric()
    objective = Metric("agreement", agreement)  # an objective need not be a distance
    scores = discover(dataclasses.replace(task, objectives={"agreement": objective}), "eap")
    assert scores.scores.shape == (task.graph().n_edges,) and bool(torch.isfinite(scores.scores).all())
