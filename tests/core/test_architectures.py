"""The architecture read off an OpenAI-layout state dict, for all nine model-card CLIPs, against
open_clip's own configs: state dicts built on the meta device (shapes only, no weights, no download)."""
import open_clip
import pytest
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from lab.core import _build
from lab.core.checkpoints import infer_openai_config
from lab.core.registry import OPENAI_MODELS


@pytest.mark.parametrize("card_name", list(OPENAI_MODELS))
def test_infer_openai_config_for_every_card_architecture(card_name):
    arch = OPENAI_MODELS[card_name]
    reference = open_clip.get_model_config(arch)
    with torch.device("meta"):
        state = open_clip.CLIP(**reference, quick_gelu=True).state_dict()  # OpenAI's key layout
    inferred = infer_openai_config(state)
    assert inferred["embed_dim"] == reference["embed_dim"]
    for part, defaults in (("vision_cfg", CLIPVisionCfg), ("text_cfg", CLIPTextCfg)):
        full = vars(defaults(**reference[part]))  # open_clip's config with its defaults filled in
        for key, value in inferred[part].items():
            assert value == full[key], f"{card_name} {part}.{key}: inferred {value}, open_clip {full[key]}"
    assert inferred["text_cfg"]["heads"] == reference["text_cfg"]["heads"]
    assert _build._match_openai_arch(inferred) == arch
    with torch.device("meta"):
        rebuilt = _build.build_module({**inferred, "quick_gelu": True}).state_dict()
    assert {k: tuple(v.shape) for k, v in rebuilt.items()} == {k: tuple(v.shape) for k, v in state.items()}
