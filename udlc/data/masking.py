"""The corruptions that BERT and T5 learn to undo, drawn from the run's generator (the one that orders its batches,
so a resumed run draws the same masks): BERT's masked tokens and T5's noise spans.

BERT (Devlin et al. 2019): each token is chosen with probability `rate` (0.15); of the chosen, 80 % become
[MASK], 10 % a random token of the base vocabulary, 10 % stay; the loss is on the chosen positions only.

T5 (Raffel et al. 2020, `t5.data.preprocessors.span_corruption`): `round(length * density)` noise tokens fall in
`round(noise / mean_span_length)` spans; the text is cut into alternating clean and noise spans, clean first, each
kind's lengths a random composition of its count (`random_spans_noise_mask`). The source keeps the clean spans
and puts one sentinel where each noise span was; the target is each sentinel followed by the span it hides
(`noise_span_to_unique_sentinel`); both end in <eos>. The k-th span's sentinel is <extra_id_k>.
"""

from __future__ import annotations

from typing import Any

from udlc.data.text import WindowBatches


def mask_tokens(ids: Any, rate: float, mask_id: int, vocab: int, generator: Any) -> tuple[Any, Any]:
    """(BERT's input, the chosen positions) for the token ids `ids`: random ids are drawn from [0, vocab). At least
    one position of the batch is chosen, so that its loss is defined."""
    import torch

    device = generator.device
    chosen = torch.rand(ids.shape, generator=generator, device=device) < rate
    what = torch.rand(ids.shape, generator=generator, device=device)
    random = torch.randint(vocab, ids.shape, generator=generator, device=device)
    chosen, what, random = chosen.to(ids.device), what.to(ids.device), random.to(ids.device)
    if not chosen.any():
        chosen.view(-1)[0] = True
    inputs = torch.where(chosen & (what < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (what >= 0.8) & (what < 0.9), random, inputs)
    return inputs, chosen


def span_counts(length: int, density: float, mean_span_length: float) -> tuple[int, int]:
    """(noise tokens, noise spans) of a text of `length` tokens, as T5 counts them (round half to even, as numpy)."""
    n = max(length, 2)
    noise = min(max(round(n * density), 1), n - 1)
    return noise, max(round(noise / mean_span_length), 1)


def noise_mask(length: int, density: float, mean_span_length: float, generator: Any) -> Any:
    """T5's random_spans_noise_mask: a bool (length,) tensor, True on the noise tokens."""
    import torch

    n = max(length, 2)
    noise, spans = span_counts(length, density, mean_span_length)

    def segments(items: int, count: int) -> Any:
        """`items` cut into `count` non-empty runs at random: their lengths."""
        firsts = (torch.arange(items - 1) < count - 1)[torch.randperm(items - 1, generator=generator,
                                                                     device=generator.device).cpu()]
        ids = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.long), firsts.long()]), 0)
        return torch.bincount(ids, minlength=count)

    noisy, clean = segments(noise, spans), segments(n - noise, spans)
    starts = torch.cumsum(torch.stack([clean, noisy], 1).reshape(-1), 0)[:-1]
    indicator = torch.zeros(n, dtype=torch.long)
    indicator[starts] = 1
    return (torch.cumsum(indicator, 0) % 2 == 1)[:length]


def corrupt(ids: Any, noise: Any, sentinels: list[int], eos: int) -> tuple[Any, Any]:
    """(source, target) of one text's ids (1-D) and its noise mask: T5's inputs and targets, each ending in <eos>.
    `sentinels[k]` is <extra_id_k>'s id."""
    import torch

    def keep(mask: Any) -> Any:
        before = torch.cat([torch.zeros(1, dtype=torch.bool), mask[:-1]])
        first = mask & ~before
        marks = torch.as_tensor(sentinels, dtype=ids.dtype)[(torch.cumsum(first.long(), 0) - 1).clamp(min=0)]
        out = torch.where(first, marks.to(ids.device), ids)[~(mask & before)]
        return torch.cat([out, torch.tensor([eos], dtype=ids.dtype, device=ids.device)])

    noise = noise.to(ids.device)
    return keep(noise), keep(~noise)


class MaskedBatches(WindowBatches):
    """A text split's windows of `context` tokens, BERT-masked anew each epoch: {input: masked ids, "target": the
    ids, "chosen": the positions to learn}, and token types (all 0: one segment) where the network reads them.
    An evaluation (no generator) masks the same positions every time, from `seed`."""

    def __init__(self, ids: Any, context: int, name: str, split: str, batch_size: int, shuffle: bool, device: Any,
                 *, rate: float, mask_id: int, vocab: int, seed: int, types: str | None):
        super().__init__(ids, context, name, split, batch_size, shuffle, device)  # its inputs: windows of `context`
        self.rate, self.mask_id, self.vocab, self.seed, self.types = rate, mask_id, vocab, seed, types

    def epoch_batches(self, generator: Any = None) -> Any:
        import torch

        g = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        for batch in super().epoch_batches(generator):
            window = batch[self.name]
            inputs, chosen = mask_tokens(window, self.rate, self.mask_id, self.vocab, g)
            out = {self.name: inputs, "target": window, "chosen": chosen}
            if self.types:
                out[self.types] = torch.zeros_like(window)
            yield out


class SpanBatches(WindowBatches):
    """A text split's windows of `context` tokens, span-corrupted anew each epoch: seq2seq fields {"source",
    "decoder": <bos> + target, "target"}. Every window has the same counts, so a batch needs no padding."""

    def __init__(self, ids: Any, context: int, split: str, batch_size: int, shuffle: bool, device: Any, *,
                 density: float, mean_span_length: float, sentinels: list[int], bos: int, eos: int, seed: int):
        super().__init__(ids, context, "source", split, batch_size, shuffle, device)
        self.density, self.mean, self.sentinels = density, mean_span_length, sentinels
        self.bos, self.eos, self.seed, self.length = bos, eos, seed, context

    def epoch_batches(self, generator: Any = None) -> Any:
        import torch

        g = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        for batch in super().epoch_batches(generator):
            pairs = [corrupt(w, noise_mask(self.length, self.density, self.mean, g), self.sentinels, self.eos)
                     for w in batch["source"]]
            source, target = torch.stack([s for s, _ in pairs]), torch.stack([t for _, t in pairs])
            bos = torch.full_like(target[:, :1], self.bos)
            yield {"source": source, "decoder": torch.cat([bos, target[:, :-1]], 1), "target": target}
