"""The PaCo-FR model: a timm ViT encoder run MAE style, a patch codebook with multiple candidate
tokens, an MAE-style decoder, code-to-pixel, token-prediction and relation heads, and the losses.

Imports torch and timm only (no data stack), so a GPU worker can run it with a minimal install.
"""

from paco_fr.model.codebook import CodebookOutput, PatchCodebook
from paco_fr.model.config import LossWeights, ModelConfig
from paco_fr.model.encoder import MaskedViTEncoder, build_vit
from paco_fr.model.export import EncoderLoadError, load_encoder, save_encoder
from paco_fr.model.paco import ModelOutput, PaCoFR

__all__ = ["CodebookOutput", "EncoderLoadError", "LossWeights", "MaskedViTEncoder", "ModelConfig", "ModelOutput",
           "PaCoFR", "PatchCodebook", "build_vit", "load_encoder", "save_encoder"]
