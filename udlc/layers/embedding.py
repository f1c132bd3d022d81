"""Embeddings: token ids to vectors (`embedding`), and an image to a sequence of patch vectors (`patch_embed`,
the stem of a Vision Transformer)."""

from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from udlc.layers.registry import EACH, LayerConfig, Shape, ShapeError, expect_rank, fmt, numel, register


class Embedding(LayerConfig):
    """A table of `num_embeddings` learned vectors; each token id picks its row."""

    type: Literal["embedding"] = "embedding"
    embedding_dim: PositiveInt | None = Field(None, description="the width of each vector; required unless `tie` "
                                              "gives it")
    # Required for now (or given by `tie`): a spec gives the vocabulary size (a later step can fill it from the
    # tokenizer).
    num_embeddings: PositiveInt | None = Field(None, description="the vocabulary size: ids run from 0 to "
                                               "num_embeddings - 1; required unless `tie` gives it")
    padding_idx: NonNegativeInt | None = Field(
        None, description="the id of the padding token: its row starts at zero and is never trained")
    tie: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = Field(
        None, description="the id of an embedding whose table this one shares (T5 looks up its encoder's and its "
                          "decoder's ids in one); the sizes and padding_idx are then that one's")

    @model_validator(mode="after")
    def _padding_in_vocabulary(self) -> "Embedding":
        if self.tie is None and (self.embedding_dim is None or self.num_embeddings is None):
            raise ValueError("give embedding_dim and num_embeddings, or `tie: <embedding id>`")
        if self.padding_idx is not None and self.num_embeddings is not None and self.padding_idx >= self.num_embeddings:
            raise ValueError(f"padding_idx {self.padding_idx} is not an id of the vocabulary "
                             f"(0 to {self.num_embeddings - 1})")
        return self


def token_ids(cfg: Embedding, *dtypes: str) -> str:
    """The dtype rule of a lookup: int64 ids in, float32 vectors out."""
    for dtype in dtypes:
        if dtype != "int64":
            raise ShapeError(f"expects int64 token ids but gets {dtype}",
                             "give the input `dtype: int64` if it holds ids; project float features with `linear`")
    return "float32"


def embedding_shape(cfg: Embedding, x: Shape) -> Shape:
    return tuple(x) + (cfg.embedding_dim,)  # ids of any shape: one vector per id


def embedding_params(cfg: Embedding, x: Shape) -> int:
    if cfg.tie:
        return 0  # the tied embedding's table, counted there
    return cfg.num_embeddings * cfg.embedding_dim  # the padding row is a parameter too; torch only masks its gradient


def embedding_flops(cfg: Embedding, x: Shape) -> int:
    # A lookup does no arithmetic; one operation per value read out keeps it in line with the copies and
    # reductions counted elsewhere (and with the registry test, which sees new values in the output).
    return numel(x) * cfg.embedding_dim


def build_embedding(cfg: Embedding, x: Shape):
    from torch import nn

    return nn.Embedding(cfg.num_embeddings, cfg.embedding_dim, padding_idx=cfg.padding_idx)


register(Embedding, shape=embedding_shape, build=build_embedding, params=embedding_params, flops=embedding_flops,
         main_arg="embedding_dim", dtype=token_ids, sample_dtypes=("int64",), reads=EACH,
         tensors=lambda cfg, x: {"weight": (cfg.num_embeddings, cfg.embedding_dim)},
         samples=[({"embedding_dim": 8, "num_embeddings": 11}, (("T",),)),
                  ({"embedding_dim": 5, "num_embeddings": 3, "padding_idx": 0}, ((4, 3),))])


class PatchEmbed(LayerConfig):
    """Cuts an image into patch_size x patch_size squares and projects each to embed_dim features: (C, H, W) ->
    (N, embed_dim) with N = (H / patch_size) * (W / patch_size) patches, row by row (Dosovitskiy et al., 2021)."""

    type: Literal["patch_embed"] = "patch_embed"
    embed_dim: PositiveInt
    patch_size: PositiveInt


def patch_embed_shape(cfg: PatchEmbed, x: Shape) -> Shape:
    expect_rank("", x, (3,), "(channels, height, width)", "add 'reshape' before it")
    c, h, w = x
    p = cfg.patch_size
    if h % p or w % p:
        raise ShapeError(f"patch_size {p} does not divide the height and width of the input {fmt(x)}",
                         f"resize or crop the images to a multiple of {p}, or pick a patch_size that divides both")
    return ((h // p) * (w // p), cfg.embed_dim)


def patch_embed_params(cfg: PatchEmbed, x: Shape) -> int:
    return cfg.embed_dim * x[0] * cfg.patch_size**2 + cfg.embed_dim  # kernel and bias


def patch_embed_flops(cfg: PatchEmbed, x: Shape) -> int:
    # A convolution whose windows do not overlap: each input value is used once per output feature.
    return 2 * numel(x) * cfg.embed_dim


def build_patch_embed(cfg: PatchEmbed, x: Shape):
    from udlc.layers.modules.embedding import PatchEmbedModule

    return PatchEmbedModule(x[0], cfg.embed_dim, cfg.patch_size)


register(PatchEmbed, shape=patch_embed_shape, build=build_patch_embed, params=patch_embed_params,
         flops=patch_embed_flops, main_arg="embed_dim",
         tensors=lambda cfg, x: {"proj.weight": (cfg.embed_dim, x[0], cfg.patch_size, cfg.patch_size),
                                 "proj.bias": (cfg.embed_dim,)},
         samples=[({"embed_dim": 16, "patch_size": 2}, ((3, 8, 8),)),
                  ({"embed_dim": 5, "patch_size": 3}, ((2, 12, 6),))])
